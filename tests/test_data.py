"""Dataset loading from real on-disk formats written into tmp_path: idx, CIFAR pickles, image folders."""
import gzip
import io
import os
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from codec_train.data import load_dataset, resize_images, to_float
from semhil.errors import SemhilError

RNG = np.random.default_rng(1234)


# --- MNIST idx -------------------------------------------------------------------------------

def write_idx(path, array, gz=False):
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    if gz:
        path, raw = path.with_name(path.name + ".gz"), gzip.compress(raw)
    path.write_bytes(raw)


def write_mnist(directory, gz=False, n_train=12, n_test=5, size=(28, 28)):
    arrays = {"train-images-idx3-ubyte": RNG.integers(0, 256, (n_train, *size)),
              "train-labels-idx1-ubyte": RNG.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte": RNG.integers(0, 256, (n_test, *size)),
              "t10k-labels-idx1-ubyte": RNG.integers(0, 10, n_test)}
    arrays["train-labels-idx1-ubyte"][0] = 9  # so n_classes is 10
    for name, array in arrays.items():
        write_idx(directory / name, array, gz)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_round_trip(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz)
    data = load_dataset(f"mnist:{tmp_path}")
    assert data.x_train.shape == (12, 28, 28, 1) and data.x_test.shape == (5, 28, 28, 1)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert np.array_equal(data.x_train[..., 0], arrays["train-images-idx3-ubyte"])
    assert np.array_equal(data.x_test[..., 0], arrays["t10k-images-idx3-ubyte"])
    assert np.array_equal(data.y_train, arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert data.n_classes == 10 and data.x_train.flags.writeable


def test_mnist_mixed_plain_and_gz(tmp_path):
    arrays = write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    write_idx(tmp_path / "t10k-images-idx3-ubyte", arrays["t10k-images-idx3-ubyte"], gz=True)
    assert np.array_equal(load_dataset(f"mnist:{tmp_path}").x_test[..., 0], arrays["t10k-images-idx3-ubyte"])


def test_mnist_wrong_magic(tmp_path):
    arrays = write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", arrays["train-images-idx3-ubyte"])  # a 3-D file as labels
    with pytest.raises(SemhilError, match=r"train-labels-idx1-ubyte: not an idx file .*magic 00000803, expected 00000801"):
        load_dataset(f"mnist:{tmp_path}")


def test_mnist_truncated_file(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SemhilError, match=r"train-images-idx3-ubyte: header says 12 x 28 x 28 = 9408 bytes but the file holds 9308"):
        load_dataset(f"mnist:{tmp_path}")


def test_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4))
    with pytest.raises(SemhilError, match="has 5 images but .*t10k-labels-idx1-ubyte has 4 labels"):
        load_dataset(f"mnist:{tmp_path}")


def test_mnist_corrupt_gzip(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(SemhilError, match=r"cannot read .*t10k-labels-idx1-ubyte\.gz"):
        load_dataset(f"mnist:{tmp_path}")


# --- CIFAR python batches --------------------------------------------------------------------

def cifar_batch(n, label_key=b"labels", n_classes=10):
    return {b"batch_label": b"training batch", b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: [int(v) for v in RNG.integers(0, n_classes, n)], b"filenames": [b"x.png"] * n}


def write_pickle(path, obj, protocol=pickle.DEFAULT_PROTOCOL):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def write_cifar10(directory, **kwargs):
    batches = {f"data_batch_{i}": cifar_batch(3) for i in range(1, 6)} | {"test_batch": cifar_batch(4)}
    for name, batch in batches.items():
        write_pickle(directory / name, batch, **kwargs)
    return batches


def chw_to_hwc(rows):
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


@pytest.fixture
def no_plain_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("plain pickle.load used")
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def test_cifar10_round_trip(tmp_path, no_plain_pickle):
    batches = write_cifar10(tmp_path)
    data = load_dataset(f"cifar10:{tmp_path}")
    assert data.x_train.shape == (15, 32, 32, 3) and data.x_test.shape == (4, 32, 32, 3)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64 and data.n_classes == 10
    train_rows = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert np.array_equal(data.x_train, chw_to_hwc(train_rows))
    # pixel (row 1, column 2) of image 0: red, green, blue planes are 1024 bytes apart
    assert list(data.x_train[0, 1, 2]) == [train_rows[0, 34], train_rows[0, 1024 + 34], train_rows[0, 2048 + 34]]
    assert data.y_train.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert np.array_equal(data.x_test, chw_to_hwc(batches["test_batch"][b"data"]))
    assert data.y_test.tolist() == batches["test_batch"][b"labels"]


def test_cifar100_round_trip(tmp_path, no_plain_pickle):
    train, test = cifar_batch(6, b"fine_labels", 100), cifar_batch(2, b"fine_labels", 100)
    train[b"coarse_labels"] = [0] * 6
    write_pickle(tmp_path / "train", train)
    write_pickle(tmp_path / "test", test)
    data = load_dataset(f"cifar100:{tmp_path}")
    assert data.n_classes == 100 and data.x_train.shape == (6, 32, 32, 3) and data.x_test.shape == (2, 32, 32, 3)
    assert np.array_equal(data.x_train, chw_to_hwc(train[b"data"]))
    assert data.y_train.tolist() == train[b"fine_labels"] and data.y_test.tolist() == test[b"fine_labels"]


class Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 str (BINSTRING opcodes), as the real CIFAR files hold them: they
    only load with encoding="bytes"."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)
    dispatch[bytes] = save_py2_str


def test_cifar_python2_style_pickle(tmp_path):
    """The real files: protocol 2, Python 2 str, GLOBAL numpy.core.multiarray._reconstruct."""
    batches = write_cifar10(tmp_path)
    for name, batch in batches.items():
        out = io.BytesIO()
        Python2Pickler(out, protocol=2).dump(batch)
        raw = out.getvalue()
        assert b"_codecs" not in raw and pickle.BINSTRING in raw
        assert b"cnumpy._core.multiarray\n_reconstruct\n" in raw
        (tmp_path / name).write_bytes(raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    data = load_dataset(f"cifar10:{tmp_path}")
    assert np.array_equal(data.x_test, chw_to_hwc(batches["test_batch"][b"data"])) and data.y_test.tolist() == batches["test_batch"][b"labels"]


def test_cifar_protocol_5_and_str_keys_and_numpy_labels(tmp_path):
    batches = write_cifar10(tmp_path, protocol=5)
    test = {"data": batches["test_batch"][b"data"], "labels": np.array(batches["test_batch"][b"labels"])}
    write_pickle(tmp_path / "test_batch", test, protocol=5)
    data = load_dataset(f"cifar10:{tmp_path}")
    assert np.array_equal(data.x_test, chw_to_hwc(test["data"])) and data.y_test.tolist() == test["labels"].tolist()


class RunsCommand:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("where", ["whole file", "inside labels"])
@pytest.mark.parametrize("func", [os.system, eval])
def test_malicious_pickle_is_refused_without_running(tmp_path, func, where):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    arg = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    evil = RunsCommand(func, arg)
    payload = evil if where == "whole file" else {b"data": np.zeros((1, 3072), np.uint8), b"labels": [evil]}
    write_pickle(tmp_path / "data_batch_2", payload)
    name = f"{func.__module__}.{func.__name__}"
    with pytest.raises(SemhilError, match=rf"refusing to unpickle {name} from .*data_batch_2: not a CIFAR batch"):
        load_dataset(f"cifar10:{tmp_path}")
    assert not marker.exists()


def test_cifar_refuses_other_numpy_callables(tmp_path):
    write_cifar10(tmp_path)
    write_pickle(tmp_path / "test_batch", RunsCommand(np.load, str(tmp_path / "x.npy")))
    with pytest.raises(SemhilError, match=r"refusing to unpickle numpy.*\.load from .*test_batch"):
        load_dataset(f"cifar10:{tmp_path}")


@pytest.mark.parametrize("kind,name,content,message", [
    ("mnist", "t10k-images-idx3-ubyte", b"<html>not found</html>", "t10k-images-idx3-ubyte: not an idx file"),
    ("mnist", "t10k-labels-idx1-ubyte", None, r"missing .*t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte\.gz"),
    ("cifar10", "data_batch_3", None, r"missing .*data_batch_3: point cifar10:<dir> at the extracted python version"),
    ("cifar10", "test_batch", b"this is not a pickle", "cannot read .*test_batch as a CIFAR batch"),
])
def test_damaged_or_missing_file_is_named(tmp_path, kind, name, content, message):
    {"mnist": write_mnist, "cifar10": write_cifar10}[kind](tmp_path)
    if content is None:
        (tmp_path / name).unlink()
    else:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(SemhilError, match=message):
        load_dataset(f"{kind}:{tmp_path}")


@pytest.mark.parametrize("payload,problem", [
    ([1, 2, 3], "holds a list, not a dict"),
    ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 0]}, "uint8 array of N x 3072"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 0]}, "uint8 array of N x 3072"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 'labels'"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels outside 0..9"),
])
def test_cifar_wrong_contents(tmp_path, payload, problem):
    write_cifar10(tmp_path)
    write_pickle(tmp_path / "test_batch", payload)
    with pytest.raises(SemhilError, match=rf"test_batch: .*{problem}"):
        load_dataset(f"cifar10:{tmp_path}")


def test_cifar100_needs_fine_labels(tmp_path):
    write_pickle(tmp_path / "train", cifar_batch(2))  # a CIFAR-10 style batch
    write_pickle(tmp_path / "test", cifar_batch(2))
    with pytest.raises(SemhilError, match=r"train: not a CIFAR batch of this kind: no 'fine_labels'"):
        load_dataset(f"cifar100:{tmp_path}")


# --- image folders ---------------------------------------------------------------------------

def write_image(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return array


def write_folder(root, val="val", shape=(10, 12, 3)):
    """Classes bird, cat, dog (written out of order); every image random so it can be matched."""
    written = {}
    for split, n in (("train", 3), (val, 2)):
        for cls in ("dog", "bird", "cat"):
            for i in range(n):
                written[split, cls, i] = write_image(root / split / cls / f"{i}.png",
                                                     RNG.integers(0, 256, shape, dtype=np.uint8))
    return written


def by_content(x, y):
    return {img.tobytes(): int(label) for img, label in zip(x, y, strict=True)}


@pytest.mark.parametrize("val", ["val", "test"])
def test_folder_png_round_trip(tmp_path, val):
    written = write_folder(tmp_path, val)
    data = load_dataset(f"folder:{tmp_path}")
    assert data.n_classes == 3 and data.x_train.shape == (9, 10, 12, 3) and data.x_test.shape == (6, 10, 12, 3)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    classes = {"bird": 0, "cat": 1, "dog": 2}
    expect_train = {a.tobytes(): classes[c] for (s, c, _), a in written.items() if s == "train"}
    expect_test = {a.tobytes(): classes[c] for (s, c, _), a in written.items() if s == val}
    assert by_content(data.x_train, data.y_train) == expect_train
    assert by_content(data.x_test, data.y_test) == expect_test
    again = load_dataset(f"folder:{tmp_path}")
    assert np.array_equal(again.x_train, data.x_train) and np.array_equal(again.y_train, data.y_train)


def test_folder_greyscale_and_mixed(tmp_path):
    grey = write_folder(tmp_path, shape=(6, 6))
    data = load_dataset(f"folder:{tmp_path}")
    assert data.x_train.shape == (9, 6, 6, 1)
    assert set(by_content(data.x_train, data.y_train)) == {a.tobytes() for (s, _, _), a in grey.items() if s == "train"}
    colour = write_image(tmp_path / "val" / "cat" / "colour.png", RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    data = load_dataset(f"folder:{tmp_path}")
    assert data.x_train.shape == (9, 6, 6, 3) and data.x_test.shape == (7, 6, 6, 3)
    assert colour.tobytes() in by_content(data.x_test, data.y_test)
    one = grey["train", "bird", 0]
    assert np.stack([one] * 3, -1).tobytes() in by_content(data.x_train, data.y_train)  # L -> RGB repeats the value


def test_folder_jpeg_sizes_and_resizing(tmp_path):
    write_image(tmp_path / "train" / "a" / "0.png", np.full((10, 16, 3), 200, np.uint8))  # first: sets the size
    write_image(tmp_path / "train" / "b" / "0.JPEG", np.full((40, 40, 3), (30, 90, 150), np.uint8), quality=95)
    write_image(tmp_path / "train" / "b" / "1.jpg", np.full((7, 9, 3), 60, np.uint8), quality=95)
    write_image(tmp_path / "val" / "a" / "0.jpeg", np.full((20, 20, 3), 10, np.uint8), quality=95)
    (tmp_path / "train" / "b" / "notes.txt").write_text("not an image")
    data = load_dataset(f"folder:{tmp_path}")
    assert data.x_train.shape == (3, 10, 16, 3) and data.x_test.shape == (1, 10, 16, 3)
    colours = sorted((int(label), tuple(int(v) for v in img[5, 8])) for img, label in zip(data.x_train, data.y_train, strict=True))
    assert [label for label, _ in colours] == [0, 1, 1] and colours[0][1] == (200, 200, 200)  # PNG: exact
    assert max(np.abs(np.subtract(colours[1][1], (30, 90, 150))).max(), np.abs(np.subtract(colours[2][1], 60)).max()) <= 3
    assert np.abs(data.x_test.astype(int) - 10).max() <= 3
    small = load_dataset(f"folder:{tmp_path}", image_size=8)
    assert small.x_train.shape == (3, 8, 8, 3) and small.x_test.shape == (1, 8, 8, 3)
    assert sorted(small.y_train.tolist()) == [0, 1, 1]


def test_folder_empty_class(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "train" / "emu").mkdir()
    (tmp_path / "train" / "emu" / "readme.txt").write_text("todo")
    with pytest.raises(SemhilError, match=r"class folder .*train/emu has no images"):
        load_dataset(f"folder:{tmp_path}")


@pytest.mark.parametrize("damage", ["junk", "truncated"])
def test_folder_undecodable_image_is_named(tmp_path, damage):
    write_folder(tmp_path, shape=(64, 64, 3))
    path = tmp_path / "val" / "cat" / "1.png"
    path.write_bytes(b"not a png" if damage == "junk" else path.read_bytes()[:200])
    with pytest.raises(SemhilError, match=r"cannot decode image .*val/cat/1\.png"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_layout_errors(tmp_path):
    write_folder(tmp_path)
    write_image(tmp_path / "val" / "zebra" / "0.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(SemhilError, match="val has class folders that train lacks: zebra"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "val").rename(tmp_path / "elsewhere")
    with pytest.raises(SemhilError, match=r"missing folder .*val: folder:<dir> needs <dir>/train/<class>"):
        load_dataset(f"folder:{tmp_path}")
    with pytest.raises(SemhilError, match=r"missing folder .*train"):
        load_dataset(f"folder:{tmp_path / 'elsewhere'}")


# --- built-in datasets -----------------------------------------------------------------------

def test_digits():
    data = load_dataset("digits")
    assert data.x_train.shape == (1437, 8, 8, 1) and data.x_test.shape == (360, 8, 8, 1)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64 and data.n_classes == 10
    assert data.x_train.min() == 0 and data.x_train.max() == 255
    assert set(np.unique(data.x_train)) <= {round(v * 255 / 16) for v in range(17)}
    per_class = np.bincount(data.y_test, minlength=10) / np.bincount(np.r_[data.y_train, data.y_test])
    assert np.all(np.abs(per_class - 0.2) < 0.01)  # stratified
    again = load_dataset("digits")
    assert np.array_equal(again.x_test, data.x_test) and np.array_equal(again.y_train, data.y_train)


def test_mnist5k_split_unchanged():
    data = load_dataset("mnist5k")
    assert data.name == "mnist5k" and data.n_classes == 10 and data.image_shape == (28, 28, 1)
    assert len(data.x_train) == 4000 and len(data.x_test) == 1000
    assert np.bincount(data.y_train).tolist() == [400] * 10 and np.bincount(data.y_test).tolist() == [100] * 10
    assert np.array_equal(load_dataset("mnist5k").y_train, data.y_train)


def test_to_float_unchanged():
    x = to_float(np.array([[[[0], [1], [255]]]], np.uint8))
    assert x.shape == (1, 1, 1, 3) and x.flatten().tolist() == [0.0, 0.0, 127 / 128]


# --- resizing --------------------------------------------------------------------------------

def test_resize_every_kind(tmp_path):
    assert load_dataset("digits", 16).image_shape == (16, 16, 1)
    (tmp_path / "m").mkdir()
    write_mnist(tmp_path / "m", gz=True, size=(28, 20))
    mnist = load_dataset(f"mnist:{tmp_path / 'm'}", 14)
    assert mnist.x_train.shape == (12, 14, 14, 1) and mnist.x_test.shape == (5, 14, 14, 1)
    (tmp_path / "c").mkdir()
    write_cifar10(tmp_path / "c")
    cifar = load_dataset(f"cifar10:{tmp_path / 'c'}", 128)
    assert cifar.x_train.shape == (15, 128, 128, 3) and cifar.x_train.dtype == np.uint8
    assert np.array_equal(cifar.y_train, load_dataset(f"cifar10:{tmp_path / 'c'}").y_train)


def test_resize_values():
    images = RNG.integers(0, 256, (5, 32, 24, 3), dtype=np.uint8)
    for size in (12, 64):
        ours = resize_images(images, size)
        pillow = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR)) for im in images])
        assert ours.shape == (5, size, size, 3) and np.abs(ours.astype(int) - pillow).max() <= 1
        assert np.array_equal(resize_images(images, size), ours)
    flat = np.full((2, 7, 7, 1), 77, np.uint8)
    assert np.all(resize_images(flat, 30) == 77)


@pytest.mark.parametrize("size", [0, -4, 2.5, True, "128"])
def test_bad_image_size(size):
    with pytest.raises(SemhilError, match="image size .* is not a positive whole number"):
        load_dataset("digits", size)


# --- specs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,message", [
    ("cifar", r"unknown dataset 'cifar': did you mean 'cifar10'\? known datasets are mnist5k, digits, mnist:<dir>, "
              r"cifar10:<dir>, cifar100:<dir>, folder:<dir>"),
    ("mnist6k", "did you mean 'mnist5k'"),
    ("cifar1O:/data", "did you mean 'cifar10:/data'"),
    ("imagenet", "unknown dataset 'imagenet': known datasets are"),
    ("cifar10", r"dataset cifar10 is read from files on disk: give their directory as cifar10:<dir>"),
    ("folder:", r"give their directory as folder:<dir>"),
    ("mnist5k:/tmp", "dataset mnist5k is built in and takes no directory"),
    ("mnist:/no/such/dir", r"dataset directory /no/such/dir does not exist \(from 'mnist:/no/such/dir'\)"),
])
def test_bad_specs(spec, message):
    with pytest.raises(SemhilError, match=message):
        load_dataset(spec)


def test_directory_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(SemhilError, match="dataset directory .*/f is not a directory"):
        load_dataset(f"cifar100:{tmp_path / 'f'}")
