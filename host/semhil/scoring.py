"""Scoring codes at the edge: channel, decoder, task tail, accuracy; with or without a board."""
from __future__ import annotations

import numpy as np

from codec_train.data import load_dataset
from codec_train.edge import predict_from_payloads, send_over_link, transmit
from codec_train.simulate import graph_fec, protect, run_graph, sent_code_bytes
from codec_train.train import accuracy, float_payloads

from .errors import SemhilError


def nominal_ber(params: dict) -> float:
    """The channel's BER as one figure: its BER, its mean BER, or the middle of its range."""
    if "ber" in params:
        return params["ber"]
    if "mean_ber" in params:
        return params["mean_ber"]
    return (params["ber_low"] + params["ber_high"]) / 2


def ber_source(pilots, told_ber: np.ndarray) -> dict:
    """How the decoder learnt the BER: from the channel model, or estimated from pilots (and how high, on average)."""
    if pilots is None:
        return {"ber_source": "channel"}
    return {"ber_source": "pilots", **pilots.describe(), "ber_estimate_mean": float(np.mean(told_ber))}


def score(bundle, images: np.ndarray, labels: np.ndarray, payloads: np.ndarray, channels, seed: int,
          pilots=None, link=None) -> tuple[list[dict], float]:
    """Accuracy of the given codes and of the float device half through each channel (seeded with
    seed + its index, the same flips for both); and the uncompressed task CNN's on the same images.
    With pilots (radio.pilots.Pilots), the decoder is told the BER estimated from pilot bits. With a link
    (radio.link.Link), the code goes in the link's packets through the channel (send_over_link)."""
    if pilots is not None and link is not None:
        raise SemhilError("pilots and a link layer together are not modelled yet: give --pilots or --link, not both")
    task, codec = bundle.load_models()
    fec = graph_fec(bundle.graph)
    reference = protect(bundle.graph, float_payloads(task, codec, images))
    differs = np.flatnonzero(np.any(reference != payloads, axis=1))

    def predict(sent: np.ndarray, channel, k: int, subset=slice(None)) -> tuple[np.ndarray, np.ndarray, dict]:
        """Predictions of `subset` of the images sent, the BER told, and the link's figures."""
        if link is None:
            received, told_ber = transmit(codec, sent, channel, seed + k, pilots, fec)
            return predict_from_payloads(task, codec, received[subset], told_ber[subset]), told_ber, {}
        arrival = send_over_link(codec, sent, link, channel, seed + k, fec)
        preds = predict_from_payloads(task, codec, arrival.payloads[subset], arrival.ber[subset], arrival.missing[subset])
        delivery = arrival.delivery
        return preds, arrival.ber, {"link": link.describe(), "packet_loss_rate": delivery.packet_loss_rate,
                                    "air_bytes_mean": float(delivery.air_bytes.mean()),
                                    "retransmissions_mean": float((delivery.attempts - 1).sum(axis=1).mean())}

    rows = []
    for k, channel in enumerate(channels):
        preds, told_ber, link_figures = predict(payloads, channel, k)
        # The float half's frames get the same flips (a channel draws them without looking at the bits): where
        # its payload is the same, it received the same bytes, and only the others are decoded.
        float_preds = preds.copy()
        float_preds[differs] = predict(reference, channel, k, differs)[0]
        params = channel.describe()
        rows.append({"ber": nominal_ber(params),
                     "channel": channel.name, "channel_params": params, "seed": seed + k, "n": len(labels),
                     "accuracy": float((preds == labels).mean()), "float_accuracy": float((float_preds == labels).mean()),
                     **ber_source(pilots, told_ber), **link_figures})
    return rows, accuracy(task, images, labels)


def evaluate_bundle(bundle, dataset: str | None, channels, use_float: bool, seed: int = 0, pilots=None, link=None) -> dict:
    """A bundle's accuracy under the simulated channel on a dataset's test split, without a board:
    the int8 simulator's codes (or the float device half's with use_float); with pilots, see score."""
    data = load_dataset(dataset or bundle.config["dataset"], bundle.config.get("image_size"))
    if tuple(data.image_shape) != tuple(bundle.config["data"]["image_shape"]):
        raise SemhilError(f"dataset {data.name} has {data.image_shape} images, bundle {bundle.path} takes "
                          f"{tuple(bundle.config['data']['image_shape'])}")
    task, codec = bundle.load_models()
    if use_float:
        payloads = float_payloads(task, codec, data.x_test)
    elif "unsupported" in bundle.graph:
        raise SemhilError(f"bundle {bundle.path} has no int8 device graph ({bundle.graph['unsupported']}): use --float")
    else:
        payloads = run_graph(bundle.graph, data.x_test)[1]
    rows, task_accuracy = score(bundle, data.x_test, data.y_test, payloads, channels, seed, pilots, link)
    return {"board": "simulator", "bundle": str(bundle.path), "bundle_hash": bundle.hash,
            "backend": "float" if use_float else "int8", "n_images": len(data.x_test),
            "bytes_per_image": sent_code_bytes(bundle.graph), "results": rows, "task_accuracy": task_accuracy}
