"""Training a bundle: the task CNN first, then the codec of config.codec on its frozen stem
(codecs.CODECS; SemanticNN's Feature-augmentation Learning is in semantic_train.py)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress

from . import bundle as bundle_io
from radio.channel import DEFAULT_BERS, IidChannel
from semhil.errors import SemhilError

from .data import Dataset, load_dataset, to_float
from .codes import entropy_coded_bytes, pack_symbols
from .edge import map_batches, predict_through_channel
from .export import export_device_graph
from .checkpoint import Checkpoint
from .phases import run_phase
from .distributed import barrier, is_main, shard
from .codecs import CODECS
from .models import Codec
from .tasks import SplitModel, build_task

FORMAT_VERSION = 6  # bump when a change makes old cached bundles wrong


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist5k"
    image_size: int | None = None     # resize images to this square size (None: as stored)
    base: str = "small"               # task CNN: small | resnet50 | mobilenetv2
    train_images: int | None = None   # use only the first N training images (None: all)
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 64
    lr: float = 3e-3
    task_epochs: int = 8
    stage1_epochs: int = 4            # 0: the ablation without stage 1
    stage2_epochs: int = 16
    channel: str = "dynamic:0,0.05"   # training channel (radio.channel.parse_channel); "iid:0.0001": fixed-BER ablation
    alpha_div: float = 0.05           # L_div weight
    beta_cls: float = 1.0             # cross-entropy weight
    gamma_xai: float = 0.1            # L_XAI weight (eq. 3); 0: the ablation without XAI
    xai_lambda: float = 0.5
    xai_r: float = 0.0
    xai_batch: int = 16               # samples of each batch the attributions are computed on
    kd_weight: float = 1.0            # distillation from the task CNN's own logits
    mse_weight: float = 10.0          # keeps stage 2 anchored to the feature: without it a short stage 1 can collapse the tail's input
    code_channels: int | None = None  # None: half the stem's channels
    decoder_channels: int = 32
    decoder_blocks: int = 2           # at least 2 (they undo the encoder's /4)
    bits: int = 3
    attention: bool = True            # False: the ablation without BER attention
    crop_ratio: float = 1.0           # partial offloading (Algorithm 1); 1: send the whole code map
    calibration_images: int = 512
    codec: str = "semanticnn"         # codecs.CODECS: semanticnn or a baseline

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{k: v for k, v in d.items() if k not in ("format_version", "data")})

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


# "demo": the default codec of `semhil demo`; "tiny": seconds of training, for the HIL suite and benchmarks.
PRESETS = {
    "demo": TrainConfig(),
    "tiny": TrainConfig(task_epochs=4, stage1_epochs=2, stage2_epochs=4, channel="dynamic:0,0.01", gamma_xai=0.0,
                        calibration_images=256),
}


def build_models(config: TrainConfig, image_shape: tuple[int, int, int], n_classes: int) -> tuple[SplitModel, Codec]:
    """The task CNN and the codec of config.codec, sized for (H, W, C) images."""
    task = build_task(config.base, image_shape[2], n_classes)
    if config.codec not in CODECS:
        raise SemhilError(f"unknown codec {config.codec!r}: choose one of {', '.join(CODECS)}")
    return task, CODECS[config.codec].build(config, task, image_shape, n_classes)


def train_task(task: SplitModel, codec: Codec, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
               progress: Progress, checkpoint: Checkpoint) -> None:
    def loss_of_batch(idx):
        part = shard(idx)
        return F.cross_entropy(task(x[part]), y[part])

    task.train()
    run_phase("task", "task CNN", config.task_epochs, len(x), config, {"task": task, "codec": codec},
               list(task.parameters()), loss_of_batch, np.random.default_rng(config.seed), progress, checkpoint)
    task.eval()


FLOAT_BATCH = 256  # images per call of the float device half or the task CNN


def float_symbols(task: SplitModel, codec: Codec, images: np.ndarray) -> np.ndarray:
    """Sent symbols (N, h, w, C) from the float device half: the reference the int8 one approximates."""
    @torch.no_grad()
    def symbols_of(start: int) -> np.ndarray:
        return codec.float_symbols(task, images[start:start + FLOAT_BATCH]).numpy().astype(np.uint8)

    return np.concatenate(map_batches(symbols_of, len(images), FLOAT_BATCH))


def float_payloads(task: SplitModel, codec: Codec, images: np.ndarray) -> np.ndarray:
    """What the float device half reports per image: the packed code, then the side bytes."""
    @torch.no_grad()
    def payloads_of(start: int) -> np.ndarray:
        part = images[start:start + FLOAT_BATCH]
        symbols = codec.float_symbols(task, part).numpy().astype(np.uint8)
        return np.concatenate([pack_symbols(symbols, codec.shape.bits), codec.float_side(task, part)], axis=1)

    return np.concatenate(map_batches(payloads_of, len(images), FLOAT_BATCH))


def accuracy(task: SplitModel, images: np.ndarray, labels: np.ndarray) -> float:
    @torch.no_grad()
    def predictions_of(start: int) -> np.ndarray:
        return task(to_float(images[start:start + FLOAT_BATCH])).argmax(1).numpy()

    return float((np.concatenate(map_batches(predictions_of, len(images), FLOAT_BATCH)) == labels).mean())


def evaluate_float(task: SplitModel, codec: Codec, images: np.ndarray, labels: np.ndarray,
                   bers=DEFAULT_BERS, seed: int = 0) -> dict[str, float]:
    """Accuracy of the float device half + channel + decoder, per i.i.d. BER."""
    payloads = float_payloads(task, codec, images)
    return {str(ber): float((predict_through_channel(task, codec, payloads, IidChannel(ber), seed)[0] == labels).mean()) for ber in bers}


def write_bundle(path: Path, config: TrainConfig, data: Dataset, task: SplitModel, codec: Codec, metrics: dict) -> bundle_io.Bundle:
    """Export the device graph and write and seal the bundle at `path`."""
    try:
        graph = export_device_graph(task, codec, data.x_train[:config.calibration_images])
    except SemhilError as e:
        graph = {"format": 0, "unsupported": str(e)}  # trainable and evaluable, not yet buildable for a board
    path.mkdir(parents=True, exist_ok=True)
    info = {"n_classes": data.n_classes, "image_shape": list(data.image_shape)}
    (path / "config.json").write_text(json.dumps({**config.to_dict(), "data": info}, indent=2))
    torch.save(task.state_dict(), path / "task.pt")
    torch.save(codec.state_dict(), path / "codec.pt")
    (path / "device_graph.json").write_text(json.dumps(graph))
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    bundle_io.seal(path)
    return bundle_io.load_bundle(path)


def train_bundle(config: TrainConfig, path: Path, progress: Progress, data: Dataset | None = None,
                 init: bundle_io.Bundle | None = None, resume: bool = False) -> bundle_io.Bundle:
    """Train task CNN and codec and write the bundle at `path`. From `init` (an earlier bundle, e.g.
    of stage 1), its task CNN is reused as it is and its codec is the starting point. With `resume`,
    a checkpoint left in `path` by a killed training is continued."""
    data = data or load_dataset(config.dataset, config.image_size)
    torch.manual_seed(config.seed)
    n = config.train_images or len(data.x_train)
    x, y = to_float(data.x_train[:n]).to(config.device), torch.from_numpy(data.y_train[:n]).to(config.device)
    task, codec = build_models(config, data.image_shape, data.n_classes)
    stages = list(init.metrics.get("stages", [])) if init else []
    if init:
        init_task, init_codec = init.load_models()
        task.load_state_dict(init_task.state_dict())
        codec.load_state_dict(init_codec.state_dict())
    task.to(config.device)
    codec.to(config.device)
    checkpoint = Checkpoint(path, config.digest() + (init.hash if init else ""), resume)
    started = time.perf_counter()
    if not init:
        train_task(task, codec, x, y, config, progress, checkpoint)
        stages.append("task")
    stages += CODECS[config.codec].train(task, codec, x, y, config, progress, checkpoint, data.x_train[:config.calibration_images],
                                         fresh=not any(s != "task" for s in stages))
    seconds = time.perf_counter() - started
    if is_main():  # under torchrun the first process writes the bundle
        task.cpu()
        codec.cpu()
        metrics = {"train_seconds": round(seconds, 2), "stages": stages, "losses": checkpoint.losses, "task_accuracy": accuracy(task, data.x_test, data.y_test),
                   "codec_float_accuracy": evaluate_float(task, codec, data.x_test, data.y_test),
                   "bytes_per_image": codec.shape.bytes_per_image,
                   "entropy_coded_bytes_per_image": entropy_coded_bytes(float_symbols(task, codec, data.x_train[:n]),
                                                                        float_symbols(task, codec, data.x_test), 2 ** codec.shape.bits)}
        write_bundle(path, config, data, task, codec, metrics)
        checkpoint.remove()
    barrier()
    return bundle_io.load_bundle(path)


def cached_bundle(config: TrainConfig, runs_dir: Path, name: str, progress: Progress) -> bundle_io.Bundle:
    """The bundle for `config` under runs_dir/<name>-<config digest>, trained only if it is not there yet.

    Training writes to a temporary folder renamed at the end, so an interrupted run leaves no half
    bundle; the next call resumes from that folder's last checkpoint.
    """
    path = runs_dir / f"{name}-{config.digest()}"
    if path.exists():
        return bundle_io.load_bundle(path)
    tmp = runs_dir / f".{path.name}.partial"
    train_bundle(config, tmp, progress, resume=True)
    if is_main():
        tmp.rename(path)
    barrier()
    return bundle_io.load_bundle(path)
