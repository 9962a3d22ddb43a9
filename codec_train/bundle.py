"""A bundle is one trained codec on disk: config, weights, device graph, content hash.

    runs/<name>/
      config.json        training configuration (TrainConfig)
      task.pt codec.pt   state dicts (torch.load(weights_only=True))
      device_graph.json  the quantized device half (see export.py)
      metrics.json       float accuracies measured after training
      bundle.json        sha256 of each file above and the bundle hash
      device/ build/ results/   written later by export, build and run
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from semhil.errors import SemhilError

CONTENT_FILES = ("config.json", "task.pt", "codec.pt", "device_graph.json", "metrics.json")
HASH_CHARS = 16


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundle_hash(file_hashes: dict[str, str]) -> str:
    text = "".join(f"{name}:{file_hashes[name]}\n" for name in sorted(file_hashes))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def seal(path: Path) -> str:
    """Write bundle.json for the content files already in `path`; returns the bundle hash."""
    files = {name: file_sha256(path / name) for name in CONTENT_FILES}
    digest = bundle_hash(files)
    (path / "bundle.json").write_text(json.dumps({"hash": digest, "files": files}, indent=2))
    return digest


@dataclass(frozen=True)
class Bundle:
    path: Path
    hash: str
    config: dict
    graph: dict
    metrics: dict

    def load_models(self):
        """The task CNN and the codec, in eval mode, on the CPU."""
        from .train import TrainConfig, build_models
        data = self.config["data"]
        task, codec = build_models(TrainConfig.from_dict(self.config), tuple(data["image_shape"]), data["n_classes"])
        for module, name in ((task, "task.pt"), (codec, "codec.pt")):
            try:
                module.load_state_dict(torch.load(self.path / name, weights_only=True, map_location="cpu"))
            except Exception as e:  # noqa: BLE001 - any failure here means the file does not fit the config
                raise SemhilError(f"bundle {self.path}: {name} does not load ({e.__class__.__name__}): retrain the bundle") from None
        return task.eval(), codec.eval()


def load_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    manifest = path / "bundle.json"
    if not manifest.is_file():
        raise SemhilError(f"{path} is not a bundle (no bundle.json): train one with `semhil train` or `semhil demo`")
    try:
        recorded = json.loads(manifest.read_text())
        files = recorded["files"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise SemhilError(f"bundle {path}: bundle.json is corrupted: delete {path} and train again") from None
    for name in CONTENT_FILES:
        if not (path / name).is_file():
            raise SemhilError(f"bundle {path}: {name} is missing: delete {path} and train again")
        if file_sha256(path / name) != files.get(name):
            raise SemhilError(f"bundle {path}: {name} is corrupted (its sha256 differs from bundle.json): delete {path} and train again")
    digest = bundle_hash(files)
    if digest != recorded.get("hash"):
        raise SemhilError(f"bundle {path}: bundle.json is corrupted (hash mismatch): delete {path} and train again")
    read = lambda name: json.loads((path / name).read_text())  # noqa: E731
    return Bundle(path, digest, read("config.json"), read("device_graph.json"), read("metrics.json"))


def protected_bundle(bundle: Bundle, fec) -> Bundle:
    """The bundle whose device also protects its code with `fec` (radio.fec.Fec): the same codec, its device
    graph with an "fec" stage after the packer, a hash of its own. Written once beside the bundle, as
    <bundle>-<fec tag>, and reused; a folder renamed into place, so an interrupted call leaves nothing half-made."""
    if "unsupported" in bundle.graph:
        raise SemhilError(f"bundle {bundle.path} has no device graph to protect: {bundle.graph['unsupported']}")
    if "fec" in bundle.graph:
        raise SemhilError(f"bundle {bundle.path} is already protected ({fec_tag(bundle.graph['fec'])}): protect the bundle it came from")
    if fec.rs_parity == 0 and fec.interleave_depth == 1:
        raise SemhilError("no FEC to protect the code with: give RS parity bytes, an interleaver depth or both (e.g. rs:16,interleave=8)")
    stage = {"rs_parity": fec.rs_parity, "interleave_depth": fec.interleave_depth,
             "sent_bytes": fec.encoded_bytes(bundle.graph["code_bytes"])}
    path = bundle.path.with_name(f"{bundle.path.name}-{fec_tag(stage)}")
    if not path.exists():
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        tmp.mkdir(parents=True)
        for name in CONTENT_FILES:
            if name != "device_graph.json":
                shutil.copyfile(bundle.path / name, tmp / name)
        (tmp / "device_graph.json").write_text(json.dumps({**bundle.graph, "fec": stage}, indent=2))
        seal(tmp)
        try:
            tmp.rename(path)
        except OSError:  # another process made it first
            shutil.rmtree(tmp)
    return load_bundle(path)


def fec_tag(stage: dict) -> str:
    """rs16-il8 for RS with 16 parity bytes and an 8-deep bit interleaver."""
    parts = [f"rs{stage['rs_parity']}"] if stage["rs_parity"] else []
    parts += [f"il{stage['interleave_depth']}"] if stage["interleave_depth"] > 1 else []
    return "-".join(parts) or "nofec"
