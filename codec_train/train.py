"""Training: the task CNN first, then the codec on its frozen stem (Feature-augmentation Learning).

Stage 1 trains encoder + decoder as a denoising autoencoder: MSE between the clean stem feature
and its reconstruction after real bit flips. Stage 2 is task-oriented: cross-entropy of the frozen
tail on the reconstruction + distillation from the task CNN's own logits + alpha * L_div (KL of
the centres' usage from uniform) + gamma * L_XAI (eq. 3) + an MSE anchor to the clean feature.
"""
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
from semhil.channel import DEFAULT_BERS, IidChannel, parse_channel
from semhil.errors import SemhilError

from .data import Dataset, load_dataset, to_float
from .codes import pack_symbols
from .edge import predict_through_channel
from .export import export_device_graph, export_stem, round_stem_to_int8
from .qformat import activation_dec, conv_formats
from .checkpoint import Checkpoint
from .distributed import average_gradients, barrier, is_main, shard
from .losses import attributions, distillation, usage_divergence, xai_asymmetry
from .models import CodecShape, SemanticCodec
from .tasks import SplitModel, build_task, stem_shape

FORMAT_VERSION = 5  # bump when a change makes old cached bundles wrong


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
    channel: str = "dynamic:0,0.05"   # training channel (semhil.channel.parse_channel); "iid:0.0001": fixed-BER ablation
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


def build_models(config: TrainConfig, image_shape: tuple[int, int, int], n_classes: int) -> tuple[SplitModel, SemanticCodec]:
    """The task CNN and a codec sized for its stem feature on (H, W, C) images."""
    task = build_task(config.base, image_shape[2], n_classes)
    if config.decoder_blocks < 2:
        raise SemhilError(f"decoder_blocks = {config.decoder_blocks}: the decoder needs at least 2 blocks to undo the encoder's /4")
    channels, h, w = stem_shape(task, image_shape)
    if h % 4 or w % 4 or h < 4 or w < 4:
        raise SemhilError(f"{config.base} turns {image_shape[0]}x{image_shape[1]} images into a {h}x{w} stem feature; the "
                          "encoder (k4 s4) and decoder need a multiple of 4: choose another --image-size")
    shape = CodecShape(feature_channels=channels, feature_size=(h, w), code_channels=config.code_channels or channels // 2,
                       bits=config.bits, decoder_channels=config.decoder_channels, decoder_blocks=config.decoder_blocks,
                       attention=config.attention,
                       crop_ratio=config.crop_ratio)
    shape.sent_shape  # noqa: B018 - raises a clear error now if no crop of that ratio exists
    return task, SemanticCodec(shape)


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, batch_size):
        yield torch.from_numpy(order[i:i + batch_size])


def _optimizer(params, lr: float, total_steps: int):
    opt = torch.optim.Adam(params, lr=lr)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(total_steps, 1))


def _run_phase(name: str, label: str, epochs: int, n: int, config: TrainConfig, modules: dict, params: list,
               loss_of_batch, rng: np.random.Generator, progress: Progress, checkpoint: Checkpoint) -> None:
    """`epochs` passes over n training items in shuffled batches, resumable from `checkpoint`."""
    per_epoch = (n + config.batch_size - 1) // config.batch_size
    opt, schedule = _optimizer(params, config.lr, epochs * per_epoch)
    done = checkpoint.restore(name, epochs, modules, opt, schedule, rng)
    job = progress.add_task(label, total=epochs * per_epoch, completed=done * per_epoch)
    for epoch in range(done, epochs):
        for idx in _batches(n, config.batch_size, rng):
            loss = loss_of_batch(idx)
            opt.zero_grad()
            loss.backward()
            average_gradients(params)
            opt.step()
            schedule.step()
            progress.advance(job)
        checkpoint.save(name, epoch + 1, modules, opt, schedule, rng)


def train_task(task: SplitModel, codec: SemanticCodec, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
               progress: Progress, checkpoint: Checkpoint) -> None:
    def loss_of_batch(idx):
        part = shard(idx)
        return F.cross_entropy(task(x[part]), y[part])

    task.train()
    _run_phase("task", "task CNN", config.task_epochs, len(x), config, {"task": task, "codec": codec},
               list(task.parameters()), loss_of_batch, np.random.default_rng(config.seed), progress, checkpoint)
    task.eval()


def codec_loss(stage: int, task: SplitModel, codec: SemanticCodec, feature: torch.Tensor, teacher: torch.Tensor,
               labels: torch.Tensor, flips: torch.Tensor, ber: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    restored, received, soft = codec(feature, flips, ber)
    if stage == 1:
        return F.mse_loss(restored, feature)
    logits = task.tail(restored)
    loss = (config.beta_cls * F.cross_entropy(logits, labels) + config.kd_weight * distillation(logits, teacher)
            + config.alpha_div * usage_divergence(soft) + config.mse_weight * F.mse_loss(restored, feature))
    if config.gamma_xai > 0:  # on the first xai_batch samples: a regulariser, and double backward is costly
        k = config.xai_batch
        phi = attributions(lambda values: task.tail(codec.decode_values(values, ber[:k])), received[:k], labels[:k])
        loss = loss + config.gamma_xai * xai_asymmetry(phi, config.xai_lambda, config.xai_r)
    return loss


def train_codec(task: SplitModel, codec: SemanticCodec, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                progress: Progress, checkpoint: Checkpoint, calibration: np.ndarray, init_centres: bool = True) -> None:
    """Stage 1 then stage 2 on the frozen task CNN (either may have 0 epochs).

    The device half trains as the board will run it: the stem's weights are rounded to their int8
    values and its output to its int8 format (calibrated on `calibration`, uint8 images); stage 2
    also rounds the encoder conv's weights and output. So the float device half and the int8 one
    send the same symbols, bar float rounding in the encoder's tail."""
    task.eval().requires_grad_(False)
    with torch.no_grad():
        stem_layers, _ = export_stem(task.cpu(), calibration)
        round_stem_to_int8(task, stem_layers)
        task.to(x.device)
        codec.encoder.input_quant.set_format(next(l["out_dec"] for l in reversed(stem_layers) if l["op"] == "conv2d"))
        features = torch.cat([task.stem(x[i:i + 256]) for i in range(0, len(x), 256)])
        teacher = torch.cat([task.tail(features[i:i + 256]) for i in range(0, len(x), 256)])
        if init_centres:
            codec.encoder.quantizer.init_from(codec.encoder.analysis(features[:512]))
    channel = parse_channel(config.channel)
    n_bits = int(np.prod(codec.shape.sent_shape)) * codec.shape.bits
    rng = np.random.default_rng(config.seed + 1)
    codec.train()
    for stage, epochs in ((1, config.stage1_epochs), (2, config.stage2_epochs)):
        def loss_of_batch(idx, stage=stage):
            flips, ber = channel.sample(len(idx), n_bits, rng)  # the whole batch, so every process draws the same
            part = shard(torch.arange(len(idx)))
            flips = torch.from_numpy(flips[part.numpy()]).to(x.device)
            ber = torch.from_numpy(ber[part.numpy()]).float().to(x.device)
            i = idx[part]
            return codec_loss(stage, task, codec, features[i], teacher[i], y[i], flips, ber, config)

        if stage == 2 and epochs and not bool(codec.encoder.conv_quant.enabled):
            calibrate_conv_output(codec, features[:config.calibration_images])
        if epochs:
            _run_phase(f"stage{stage}", f"codec stage {stage}", epochs, len(x), config, {"task": task, "codec": codec},
                       list(codec.parameters()), loss_of_batch, rng, progress, checkpoint)
    codec.eval()


@torch.no_grad()
def calibrate_conv_output(codec: SemanticCodec, features: torch.Tensor) -> None:
    """Fixes the int8 format of the encoder conv's output (and so starts rounding its weights)."""
    enc = codec.encoder
    out = enc.conv(enc.input_quant(features)).permute(0, 2, 3, 1).cpu().numpy()
    in_dec = int(enc.input_quant.dec)
    w_dec, _, _ = conv_formats(enc.conv.weight.detach().cpu().numpy(), enc.conv.bias.detach().cpu().numpy(), in_dec)
    enc.conv_quant.set_format(activation_dec(out, in_dec + int(w_dec.min())))


@torch.no_grad()
def float_symbols(task: SplitModel, codec: SemanticCodec, images: np.ndarray) -> np.ndarray:
    """Sent symbols (N, h, w, C) from the float device half: the reference the int8 one approximates."""
    x = to_float(images)
    return torch.cat([codec.encode(task.stem(x[i:i + 256]))[1] for i in range(0, len(x), 256)]).numpy().astype(np.uint8)


@torch.no_grad()
def accuracy(task: SplitModel, images: np.ndarray, labels: np.ndarray) -> float:
    x = to_float(images)
    preds = torch.cat([task(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)]).numpy()
    return float((preds == labels).mean())


def evaluate_float(task: SplitModel, codec: SemanticCodec, images: np.ndarray, labels: np.ndarray,
                   bers=DEFAULT_BERS, seed: int = 0) -> dict[str, float]:
    """Accuracy of the float device half + channel + decoder, per i.i.d. BER."""
    payloads = pack_symbols(float_symbols(task, codec, images), codec.shape.bits)
    return {str(ber): float((predict_through_channel(task, codec, payloads, IidChannel(ber), seed)[0] == labels).mean()) for ber in bers}


def write_bundle(path: Path, config: TrainConfig, data: Dataset, task: SplitModel, codec: SemanticCodec, metrics: dict) -> bundle_io.Bundle:
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
    if config.stage1_epochs or config.stage2_epochs:
        train_codec(task, codec, x, y, config, progress, checkpoint, data.x_train[:config.calibration_images],
                    init_centres=not any(s.startswith("stage") for s in stages))
        stages += [name for name, epochs in (("stage1", config.stage1_epochs), ("stage2", config.stage2_epochs)) if epochs]
    seconds = time.perf_counter() - started
    if is_main():  # under torchrun the first process writes the bundle
        task.cpu()
        codec.cpu()
        metrics = {"train_seconds": round(seconds, 2), "stages": stages, "task_accuracy": accuracy(task, data.x_test, data.y_test),
                   "codec_float_accuracy": evaluate_float(task, codec, data.x_test, data.y_test)}
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
