"""Scoring codes at the edge: channel, decoder, task tail, accuracy; with or without a board."""
from __future__ import annotations

import numpy as np

from codec_train.codes import pack_symbols
from codec_train.data import load_dataset
from codec_train.edge import predict_from_payloads, predict_from_symbols
from codec_train.simulate import run_graph
from codec_train.train import accuracy, float_symbols

from .channel import flip_bits_iid
from .errors import SemhilError


def score(bundle, images: np.ndarray, labels: np.ndarray, payloads: np.ndarray, bers, seed: int) -> tuple[list[dict], float]:
    """Accuracy of the given codes and of the float device half, per BER, through the same i.i.d.
    channel (seed + index of the BER); and the uncompressed task CNN's accuracy on the same images."""
    task, codec = bundle.load_models()
    n_bits = int(np.prod(codec.shape.sent_shape)) * codec.shape.bits
    reference = float_symbols(task, codec, images)
    rows = []
    for k, ber in enumerate(bers):
        received = flip_bits_iid(payloads, ber, np.random.default_rng(seed + k), n_bits=n_bits)
        preds = predict_from_payloads(task, codec, received, ber)
        float_preds = predict_from_symbols(task, codec, reference, ber, seed + k)
        rows.append({"ber": ber, "channel": "iid", "seed": seed + k, "n": len(labels),
                     "accuracy": float((preds == labels).mean()), "float_accuracy": float((float_preds == labels).mean())})
    return rows, accuracy(task, images, labels)


def evaluate_bundle(bundle, dataset: str | None, bers, use_float: bool, seed: int = 0) -> dict:
    """A bundle's accuracy under the simulated channel on a dataset's test split, without a board:
    the int8 simulator's codes (or the float device half's with use_float)."""
    data = load_dataset(dataset or bundle.config["dataset"], bundle.config.get("image_size"))
    if tuple(data.image_shape) != tuple(bundle.config["data"]["image_shape"]):
        raise SemhilError(f"dataset {data.name} has {data.image_shape} images, bundle {bundle.path} takes "
                          f"{tuple(bundle.config['data']['image_shape'])}")
    task, codec = bundle.load_models()
    if use_float:
        payloads = pack_symbols(float_symbols(task, codec, data.x_test), codec.shape.bits)
    elif "unsupported" in bundle.graph:
        raise SemhilError(f"bundle {bundle.path} has no int8 device graph ({bundle.graph['unsupported']}): use --float")
    else:
        payloads = run_graph(bundle.graph, data.x_test)[1]
    rows, task_accuracy = score(bundle, data.x_test, data.y_test, payloads, bers, seed)
    return {"board": "simulator", "bundle": str(bundle.path), "bundle_hash": bundle.hash,
            "backend": "float" if use_float else "int8", "n_images": len(data.x_test),
            "bytes_per_image": codec.shape.bytes_per_image, "results": rows, "task_accuracy": task_accuracy}
