"""Training checkpoints, one per finished epoch, so that a killed training resumes where it was:
<bundle folder>/checkpoint.pt holds the phase, epochs done, weights, optimizer, schedule, the
numpy generator's state, the mean loss of each epoch so far and the configuration's digest
(loadable with weights_only)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from semhil.errors import SemhilError

from .distributed import is_main

PHASES = ("task", "stage1", "stage2", "codec", "codec_fine")  # SemanticNN trains stage 1 and 2, the baselines "codec" phases


class Checkpoint:
    def __init__(self, folder: Path | None, digest: str, resume: bool):
        self.file = folder / "checkpoint.pt" if folder else None
        self.digest = digest
        self.saved = None
        self.losses: dict[str, list[float]] = {}  # phase -> mean training loss of each epoch
        if self.file is None or not self.file.exists():
            return
        if not resume:
            raise SemhilError(f"{folder} holds the checkpoint of an interrupted training: add --resume to continue it, or delete {folder}")
        self.saved = torch.load(self.file, weights_only=True)
        if self.saved["digest"] != digest:
            raise SemhilError(f"the checkpoint in {folder} is of another configuration: delete {folder} or train with the same options")
        self.losses = json.loads(self.saved.get("losses", "{}"))

    def restore(self, phase: str, epochs: int, modules: dict, opt, schedule, rng: np.random.Generator) -> int:
        """Epochs of `phase` already done, with their state loaded; 0 without a checkpoint that far."""
        if self.saved is None or PHASES.index(self.saved["phase"]) < PHASES.index(phase):
            return 0
        for name, module in modules.items():
            module.load_state_dict(self.saved["models"][name])
        if self.saved["phase"] != phase:
            return epochs
        opt.load_state_dict(self.saved["optimizer"])
        schedule.load_state_dict(self.saved["schedule"])
        rng.bit_generator.state = json.loads(self.saved["rng"])
        return self.saved["epoch"]

    def save(self, phase: str, epoch: int, modules: dict, opt, schedule, rng: np.random.Generator) -> None:
        if self.file is None or not is_main():
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        state = {"digest": self.digest, "phase": phase, "epoch": epoch, "models": {k: m.state_dict() for k, m in modules.items()},
                 "optimizer": opt.state_dict(), "schedule": schedule.state_dict(), "rng": json.dumps(rng.bit_generator.state),
                 "losses": json.dumps(self.losses)}
        partial = self.file.with_suffix(".tmp")
        torch.save(state, partial)
        partial.replace(self.file)

    def remove(self) -> None:
        if self.file is not None and is_main():
            self.file.unlink(missing_ok=True)
