"""Several training processes under `torchrun` (CPU: gloo). One process is the plain case: every
function here then does nothing, so the train loop is the same either way."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env() -> None:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")


def rank_and_size() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def is_main() -> bool:
    return rank_and_size()[0] == 0


def shard(idx: torch.Tensor) -> torch.Tensor:
    """This process's share of a batch (every process draws the same batches from the same seed)."""
    rank, size = rank_and_size()
    return idx[rank::size]


def average_gradients(params) -> None:
    _, size = rank_and_size()
    if size > 1:
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= size


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
