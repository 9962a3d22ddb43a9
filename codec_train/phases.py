"""What every codec's training shares: shuffled epochs that resume from a checkpoint and record their
loss, and the frozen task CNN whose stem runs in int8 as the board runs it."""
from __future__ import annotations

import numpy as np
import torch
from rich.progress import Progress

from .checkpoint import Checkpoint
from .distributed import average_gradients
from .export import export_stem, round_stem_to_int8


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
