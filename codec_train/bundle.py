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
