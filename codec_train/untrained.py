"""Untrained codecs for measuring device arithmetic and cost (HIL tests, `semhil bench kernels`, bench/):
a ResNet-50 (or another base's) stem with non-trivial weights, batch-norm statistics and centres, and
an RGB image folder cut from a real photograph that ships with matplotlib (the 128x128 and 224x224 RGB
codecs need colour images, and nothing can be downloaded here)."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import bundle as bundle_io
from .data import load_dataset
from .train import PRESETS, build_models, write_bundle


def photo_folder(directory: Path, per_class: int = 12, size: int = 224) -> Path:
    """<directory>/{train,val}/{left,right}/*.png: size x size crops of the photo's left and right
    halves at random places and scales, some mirrored. Returns directory (the spec is folder:<dir>)."""
    import matplotlib
    from PIL import Image
    photo = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    width, height = photo.size
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label, (x_lo, x_hi) in {"left": (0, width // 2), "right": (width // 2, width)}.items():
            folder = directory / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                side = int(rng.integers(height // 4, height // 2))
                x = int(rng.integers(x_lo, max(x_lo + 1, x_hi - side)))
                y = int(rng.integers(0, height - side))
                crop = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR)
                if rng.random() < 0.5:
                    crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
                crop.save(folder / f"{i:03d}.png")
    return directory


def untrained_config(image_size: int, dataset: str = "mnist5k", base: str = "resnet50"):
    return dataclasses.replace(PRESETS["tiny"], base=base, image_size=image_size, dataset=dataset)


def untrained_resnet_bundle(path, image_size: int, dataset: str = "mnist5k", base: str = "resnet50") -> bundle_io.Bundle:
    """A codec with a ResNet-50 (or another base's) stem for `dataset` at image_size, untrained but with
    non-trivial weights, batch-norm statistics and centres: only the device arithmetic is under test."""
    config = untrained_config(image_size, dataset, base)
    data = load_dataset(dataset, image_size)
    torch.manual_seed(0)
    task, codec = build_models(config, data.image_shape, data.n_classes)
    with torch.no_grad():
        codec.encoder.quantizer.centres.copy_(torch.linspace(-0.6, 0.9, 8))
        for m in task.stem.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.05, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return write_bundle(path, config, data, task.eval(), codec.eval(), {})


def cached_photo_bundle(runs_dir: Path, image_size: int, base: str = "resnet50", per_class: int = 8) -> bundle_io.Bundle:
    """The untrained `base` codec on photo_folder's RGB crops at image_size, kept under
    runs_dir/<base>-<size>-untrained-<config digest>/ (its photos beside it, in <base>-<size>-untrained-photos-<n>/) and built only if it is
    not there yet; built in a temporary folder renamed at the end, so an interrupted build leaves nothing half done."""
    stem = f"{base}-{image_size}-untrained"
    photos = runs_dir / f"{stem}-photos-{per_class}"  # the dataset spec names it: the digest covers it
    path = runs_dir / f"{stem}-{untrained_config(image_size, f'folder:{photos.resolve()}', base).digest()}"
    if path.exists():
        return bundle_io.load_bundle(path)
    if not photos.exists():
        tmp_photos = runs_dir / f".{photos.name}.partial"
        shutil.rmtree(tmp_photos, ignore_errors=True)
        photo_folder(tmp_photos, per_class)
        tmp_photos.rename(photos)
    tmp = runs_dir / f".{path.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    untrained_resnet_bundle(tmp, image_size, f"folder:{photos.resolve()}", base)
    tmp.rename(path)
    return bundle_io.load_bundle(path)
