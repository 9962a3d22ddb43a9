"""What every codec's training shares: shuffled epochs that resume from a checkpoint and record their
loss, and the frozen task CNN whose stem runs in int8 as the board runs it."""
from __future__ import annotations

import numpy as np
import torch
from rich.progress import Progress

from .checkpoint import Checkpoint
from .distributed import average_gradients, shard
from .export import export_stem, round_stem_to_int8
from .qformat import fix_conv_format


def batches(n: int, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, batch_size):
        yield torch.from_numpy(order[i:i + batch_size])


def run_phase(name: str, label: str, epochs: int, n: int, config, modules: dict, params: list,
              loss_of_batch, rng: np.random.Generator, progress: Progress, checkpoint: Checkpoint) -> None:
    """`epochs` passes over n training items in shuffled batches of config.batch_size (Adam, one-cycle
    schedule to config.lr), resumable from `checkpoint`, which also keeps each epoch's mean loss."""
    per_epoch = (n + config.batch_size - 1) // config.batch_size
    opt = torch.optim.Adam(params, lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=max(epochs * per_epoch, 1))
    done = checkpoint.restore(name, epochs, modules, opt, schedule, rng)
    job = progress.add_task(label, total=epochs * per_epoch, completed=done * per_epoch)
    for epoch in range(done, epochs):
        total = 0.0
        for idx in batches(n, config.batch_size, rng):
            loss = loss_of_batch(idx)
            opt.zero_grad()
            loss.backward()
            average_gradients(params)
            opt.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
            progress.advance(job)
        checkpoint.losses[name] = [*checkpoint.losses.get(name, [])[:epoch], round(total / n, 6)]
        checkpoint.save(name, epoch + 1, modules, opt, schedule, rng)


@torch.no_grad()
def freeze_int8_stem(task, x: torch.Tensor, calibration: np.ndarray) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Freezes the task CNN and rounds its stem's weights to the int8 values the board uses (calibrated
    on `calibration`, uint8 images). Returns (the stem output's int8 format, stem features of x, the
    task CNN's logits on them, the distillation teacher)."""
    task.eval().requires_grad_(False)
    device = x.device
    stem_layers, _ = export_stem(task.cpu(), calibration)
    round_stem_to_int8(task, stem_layers)
    task.to(device)
    features = torch.cat([task.stem(x[i:i + 256]) for i in range(0, len(x), 256)])
    teacher = torch.cat([task.tail(features[i:i + 256]) for i in range(0, len(x), 256)])
    return next(l["out_dec"] for l in reversed(stem_layers) if l["op"] == "conv2d"), features, teacher


def two_step_training(label: str, loss):
    """The train function of a baseline codec (codecs.CODECS) whose encoder is input_quant -> conv ->
    conv_quant and which places its quantizer's levels with place_levels(stem features).

    Half of stage1 + stage2 epochs (SemanticNN's budget) in float, with loss(task, codec, feature,
    teacher, labels, config, quantized=False); then the conv output's int8 format is fixed and the
    levels placed on what the encoder learnt; then the rest with quantized=True. Task losses on an
    untrained decoder leave it guessing the mean: the float step is where the losses warm the decoder
    up on the feature."""
    def train(task, codec, x, y, config, progress: Progress, checkpoint: Checkpoint, calibration: np.ndarray, fresh: bool = True) -> list[str]:
        stem_dec, features, teacher = freeze_int8_stem(task, x, calibration)
        codec.input_quant.set_format(stem_dec)
        epochs = config.stage1_epochs + config.stage2_epochs
        rng = np.random.default_rng(config.seed + 1)
        codec.train()
        for phase, quantized, step_epochs in (("codec", False, epochs // 2), ("codec_fine", True, epochs - epochs // 2)):
            if quantized:
                fix_conv_format(codec.input_quant, codec.conv, codec.conv_quant, features[:config.calibration_images])
                with torch.no_grad():
                    codec.place_levels(features)

            def loss_of_batch(idx, quantized=quantized):
                i = idx[shard(torch.arange(len(idx)))]
                return loss(task, codec, features[i], teacher[i], y[i], config, quantized)

            run_phase(phase, f"{label}, {'quantized' if quantized else 'float'}", step_epochs, len(features), config,
                      {"task": task, "codec": codec}, list(codec.parameters()), loss_of_batch, rng, progress, checkpoint)
        codec.eval()
        return ["codec", "codec_fine"] if epochs else []

    return train
