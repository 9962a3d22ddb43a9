"""Training: the task CNN first, then the codec on its frozen stem (Feature-augmentation Learning).

Stage 1 trains encoder + decoder as a denoising autoencoder: MSE between the clean stem feature
and its reconstruction after real bit flips. Stage 2 is task-oriented: cross-entropy of the frozen
tail on the reconstruction + distillation from the task CNN's own logits + alpha * L_div (KL of
the centres' usage from uniform) + an MSE anchor to the clean feature. The paper's XAI term is
not in yet.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress

from . import bundle as bundle_io
from .data import Dataset, load_dataset, to_float
from .edge import predict_from_symbols
from .export import export_device_graph
from .models import CodecShape, SemanticCodec, SmallCNN

FORMAT_VERSION = 1  # bump when a change makes old cached bundles wrong


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist5k"
    train_images: int | None = None   # use only the first N training images (None: all)
    seed: int = 0
    batch_size: int = 64
    lr: float = 3e-3
    task_epochs: int = 8
    stage1_epochs: int = 4
    stage2_epochs: int = 16
    ber_range: tuple[float, float] = (0.0, 0.05)  # per-sample BER drawn uniformly in training
    alpha_div: float = 0.05
    kd_weight: float = 1.0
    mse_weight: float = 10.0  # keeps stage 2 anchored to the feature: without it a short stage 1 can collapse the tail's input
    calibration_images: int = 512
    codec: CodecShape = field(default_factory=CodecShape)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d.pop("format_version", None)
        d["codec"] = CodecShape(**d["codec"])
        d["ber_range"] = tuple(d["ber_range"])
        return cls(**d)

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


# "demo": the default codec of `semhil demo`; "tiny": seconds of training, for the HIL suite and benchmarks.
PRESETS = {
    "demo": TrainConfig(),
    "tiny": TrainConfig(task_epochs=4, stage1_epochs=2, stage2_epochs=4, ber_range=(0.0, 0.01), calibration_images=256),
}


def build_models(config: TrainConfig, n_classes: int = 10, in_channels: int = 1) -> tuple[SmallCNN, SemanticCodec]:
    task = SmallCNN(in_channels, config.codec.feature_channels, n_classes)
    return task, SemanticCodec(config.codec)


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, batch_size):
        yield torch.from_numpy(order[i:i + batch_size])


def _optimizer(params, lr: float, total_steps: int):
    opt = torch.optim.Adam(params, lr=lr)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(total_steps, 1))


def train_task(task: SmallCNN, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, progress: Progress) -> None:
    rng = np.random.default_rng(config.seed)
    steps = config.task_epochs * ((len(x) + config.batch_size - 1) // config.batch_size)
    opt, schedule = _optimizer(task.parameters(), config.lr, steps)
    job = progress.add_task("task CNN", total=steps)
    task.train()
    for _ in range(config.task_epochs):
        for idx in _batches(len(x), config.batch_size, rng):
            loss = F.cross_entropy(task(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            progress.advance(job)
    task.eval()


def usage_divergence(soft: torch.Tensor) -> torch.Tensor:
    """KL(p || uniform) where p is the mean soft assignment over all symbols: differentiable."""
    p = soft.reshape(-1, soft.shape[-1]).mean(0)
    return (p * torch.log(p * len(p) + 1e-9)).sum()


def distillation(logits: torch.Tensor, teacher: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """KL from the frozen task CNN's own logits on the clean feature (soft targets)."""
    t = temperature
    return F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t


def train_codec(task: SmallCNN, codec: SemanticCodec, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, progress: Progress) -> None:
    for p in task.parameters():
        p.requires_grad_(False)
    task.eval()
    with torch.no_grad():
        features = torch.cat([task.stem(x[i:i + 512]) for i in range(0, len(x), 512)])
        teacher = task.tail(features)
        codec.encoder.quantizer.init_from(codec.encoder.analysis(features[:512]))
    rng = np.random.default_rng(config.seed + 1)
    gen = torch.Generator().manual_seed(config.seed)
    lo, hi = config.ber_range
    per_epoch = (len(x) + config.batch_size - 1) // config.batch_size
    codec.train()
    for stage, epochs in ((1, config.stage1_epochs), (2, config.stage2_epochs)):
        job = progress.add_task(f"codec stage {stage}", total=epochs * per_epoch)
        opt, schedule = _optimizer(codec.parameters(), config.lr, epochs * per_epoch)
        for _ in range(epochs):
            for idx in _batches(len(x), config.batch_size, rng):
                ber = lo + (hi - lo) * torch.rand(len(idx), generator=gen)
                restored, soft = codec(features[idx], ber)
                if stage == 1:
                    loss = F.mse_loss(restored, features[idx])
                else:
                    logits = task.tail(restored)
                    loss = (F.cross_entropy(logits, y[idx]) + config.kd_weight * distillation(logits, teacher[idx])
                            + config.alpha_div * usage_divergence(soft) + config.mse_weight * F.mse_loss(restored, features[idx]))
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
                progress.advance(job)
    codec.eval()


@torch.no_grad()
def float_symbols(task: SmallCNN, codec: SemanticCodec, images: np.ndarray) -> np.ndarray:
    """Symbols (N, H, W, C) from the float device half: the reference the int8 one approximates."""
    x = to_float(images)
    out = [codec.encoder.quantizer.assign(codec.encoder.analysis(task.stem(x[i:i + 256])))[0] for i in range(0, len(x), 256)]
    return torch.cat(out).numpy().astype(np.uint8)


@torch.no_grad()
def accuracy(task: SmallCNN, images: np.ndarray, labels: np.ndarray) -> float:
    x = to_float(images)
    preds = torch.cat([task(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)]).numpy()
    return float((preds == labels).mean())


def train_bundle(config: TrainConfig, path: Path, progress: Progress, data: Dataset | None = None) -> bundle_io.Bundle:
    """Train task CNN and codec, export the device graph, write and seal the bundle at `path`."""
    data = data or load_dataset(config.dataset)
    torch.manual_seed(config.seed)
    n = config.train_images or len(data.x_train)
    x, y = to_float(data.x_train[:n]), torch.from_numpy(data.y_train[:n])
    task, codec = build_models(config, data.n_classes, data.image_shape[2])
    started = time.perf_counter()
    train_task(task, x, y, config, progress)
    train_codec(task, codec, x, y, config, progress)
    seconds = time.perf_counter() - started
    graph = export_device_graph(task, codec, data.x_train[:config.calibration_images])
    symbols = float_symbols(task, codec, data.x_test)
    metrics = {
        "train_seconds": round(seconds, 2),
        "task_accuracy": accuracy(task, data.x_test, data.y_test),
        "codec_float_accuracy": {str(ber): float((predict_from_symbols(task, codec, symbols, ber, seed=0) == data.y_test).mean())
                                 for ber in (0.0, 0.001, 0.01, 0.05)},
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    torch.save(task.state_dict(), path / "task.pt")
    torch.save(codec.state_dict(), path / "codec.pt")
    (path / "device_graph.json").write_text(json.dumps(graph))
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    bundle_io.seal(path)
    return bundle_io.load_bundle(path)


def cached_bundle(config: TrainConfig, runs_dir: Path, name: str, progress: Progress) -> bundle_io.Bundle:
    """The bundle for `config` under runs_dir/<name>-<config digest>, trained only if it is not there yet.

    Training writes to a temporary folder renamed at the end, so an interrupted run leaves no half bundle.
    """
    path = runs_dir / f"{name}-{config.digest()}"
    if path.exists():
        return bundle_io.load_bundle(path)
    tmp = runs_dir / f".{path.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    train_bundle(config, tmp, progress)
    tmp.rename(path)
    return bundle_io.load_bundle(path)
