"""An RGB image folder (ImageNet-200 layout) cut from a real photograph that ships with matplotlib:
the 224x224 and 128x128 RGB codecs need colour images, and nothing can be downloaded here."""
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def photo_folder(directory: Path, per_class: int = 12, size: int = 224) -> Path:
    """<directory>/{train,val}/{left,right}/*.png: size x size crops of the photo's left and right
    halves at random places and scales, some mirrored. Returns directory (the spec is folder:<dir>)."""
    photo = Image.open(PHOTO).convert("RGB")
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
