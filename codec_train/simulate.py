"""The int8 simulator of a device graph: the same codes as the firmware, bit for bit."""
from __future__ import annotations

import numpy as np

from radio.fec import Fec
from semhil.errors import SemhilError

from .codes import pack_symbols

GRAPH_FORMAT = 2  # the device graph format this simulator (and the code generators) read
SIMULATE_CHUNK = 256  # images simulated at a time: its int64 intermediates grow with the images (and run faster in cache)


def conv2d_s8(x: np.ndarray, layer: dict) -> np.ndarray:
    """x: (N, H, W, C) int8 -> (N, OH, OW, OC) int8 with NNoM's integer arithmetic."""
    kh, kw = layer["kernel"]
    sh, sw = layer["stride"]
    ph, pw = layer["padding"]
    oh, ow, oc = layer["out_shape"]
    n, _, _, c = x.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    patches = np.stack([xp[:, i:i + sh * oh:sh, j:j + sw * ow:sw, :] for i in range(kh) for j in range(kw)], axis=3)
    w = np.asarray(layer["weight"], np.int64).reshape(oc, kh * kw * c)
    acc = patches.reshape(n * oh * ow, kh * kw * c) @ w.T
    out_shift = np.asarray(layer["out_shift"], np.int64)
    acc += (np.asarray(layer["bias"], np.int64) << np.asarray(layer["bias_shift"], np.int64)) + ((1 << out_shift) >> 1)
    y = np.clip(np.clip(acc >> out_shift, -128, 127), layer["act_min"], layer["act_max"])
    return y.astype(np.int8).reshape(n, oh, ow, oc)


def maxpool_s8(x: np.ndarray, layer: dict) -> np.ndarray:
    """Largest value of each window; padding never wins (NNoM's local_maxpool_q7_HWC)."""
    kh, kw = layer["kernel"]
    sh, sw = layer["stride"]
    ph, pw = layer["padding"]
    oh, ow, _ = layer["out_shape"]
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=-128)
    windows = [xp[:, i:i + sh * oh:sh, j:j + sw * ow:sw, :] for i in range(kh) for j in range(kw)]
    return np.max(np.stack(windows), axis=0)


def gdn_s8_to_f32(q: np.ndarray, layer: dict) -> np.ndarray:
    """GDN on the dequantized int8 input, in float32, in the C kernel's order of operations."""
    x = dequantize_s8_f32(q, layer)
    c = x.shape[-1]
    beta = np.asarray(layer["beta"], np.float32)
    gamma = np.asarray(layer["gamma"], np.float32).reshape(c, c)
    squares = [x[..., j] * x[..., j] for j in range(c)]
    out = np.empty_like(x)
    for i in range(c):
        acc = np.full(x.shape[:-1], beta[i], np.float32)
        for j in range(c):
            acc = acc + gamma[i, j] * squares[j]
        out[..., i] = x[..., i] / np.sqrt(acc)
    return out


def dequantize_s8_f32(q: np.ndarray, layer: dict) -> np.ndarray:
    return q.astype(np.float32) * np.float32(2.0 ** -layer["in_dec"])


def prelu_f32(x: np.ndarray, layer: dict) -> np.ndarray:
    alpha = np.asarray(layer["alpha"], np.float32)
    return np.where(x > 0, x, alpha * x).astype(np.float32)


def energy_norm_f32(x: np.ndarray, layer: dict) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) per image; the sum runs in HWC order like the C kernel's loop."""
    flat = x.reshape(len(x), -1)
    acc = np.zeros(len(x), np.float32)
    for k in range(flat.shape[1]):
        acc = acc + flat[:, k] * flat[:, k]
    scale = np.sqrt(acc / np.float32(flat.shape[1]) + np.float32(layer["eps"]))
    return (flat / scale[:, None]).reshape(x.shape)


def quantize_f32(x: np.ndarray, layer: dict) -> np.ndarray:
    """Index of the nearest centre by |x - c|; the first one wins a tie."""
    centres = np.asarray(layer["centres"], np.float32)
    distances = np.stack([np.abs(x - c) for c in centres], axis=-1)
    return distances.argmin(-1).astype(np.uint8)


def select_channels(x: np.ndarray, layer: dict) -> np.ndarray:
    return x[..., layer["channels"]]


def local_dense_s8_f32(q: np.ndarray, layer: dict) -> np.ndarray:
    """A float32 dense layer on the listed channels of an int8 tensor, summed in the C kernel's order
    (bias, then every pixel's channels in HWC order); returns its outputs as little-endian float32 bytes."""
    x = dequantize_s8_f32(q[..., layer["channels"]], layer).reshape(len(q), -1)
    weight = np.asarray(layer["weight"], np.float32).reshape(layer["outputs"], -1)
    acc = np.tile(np.asarray(layer["bias"], np.float32), (len(q), 1))
    for t in range(x.shape[1]):
        acc = acc + weight[:, t] * x[:, t:t + 1]
    return acc.astype("<f4").view(np.uint8)


def crop(x: np.ndarray, layer: dict) -> np.ndarray:
    h, w, _ = layer["out_shape"]
    return x[:, layer["top"]:layer["top"] + h, layer["left"]:layer["left"] + w, :]


OPS = {"conv2d": conv2d_s8, "maxpool": maxpool_s8, "gdn": gdn_s8_to_f32, "dequantize": dequantize_s8_f32, "prelu": prelu_f32, "energy_norm": energy_norm_f32,
       "quantize": quantize_f32, "crop": crop, "select_channels": select_channels}
SIDE_OPS = {"local_dense": local_dense_s8_f32}  # read the tensor, leave it as it is, write side bytes


def run_layers(layers: list[dict], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs `layers` (no pack) on x in order; returns (the output, the side bytes (N, side_bytes) uint8)."""
    side = [np.zeros((len(x), 0), np.uint8)]
    for layer in layers:
        if layer["op"] in SIDE_OPS:
            side.append(SIDE_OPS[layer["op"]](x, layer))
        elif layer["op"] in OPS:
            x = OPS[layer["op"]](x, layer)
        else:
            raise ValueError(f"unknown op {layer['op']!r} in device graph")
    return x, np.concatenate(side, axis=1)


def check_graph_format(graph: dict, whose: str = "the bundle") -> None:
    if "unsupported" not in graph and graph.get("format") != GRAPH_FORMAT:
        raise SemhilError(f"the device graph of {whose} has format {graph.get('format')}, this semhil reads format "
                          f"{GRAPH_FORMAT}: train the bundle again")


def run_graph(graph: dict, images: np.ndarray, chunk: int = SIMULATE_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """images: (N, H, W, C) uint8. Returns (symbols (N, H, W, C) as the packer takes them, payloads
    (N, code_bytes + side_bytes) uint8: the packed code, then the side bytes), `chunk` images at a time
    (every layer works on each image alone, so the chunk changes nothing but the memory it takes).
    The device takes pixel >> 1 as int8, or with `raw_pixels` the uint8 pixels themselves."""
    if tuple(images.shape[1:]) != tuple(graph["input"]["shape"]):
        raise ValueError(f"images are {images.shape[1:]}, the graph takes {graph['input']['shape']}")
    check_graph_format(graph)
    parts = [run_graph_chunk(graph, images[start:start + chunk]) for start in range(0, max(len(images), 1), chunk)]
    return np.concatenate([symbols for symbols, _ in parts]), np.concatenate([payloads for _, payloads in parts])


def run_graph_chunk(graph: dict, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    *body, pack = graph["layers"]
    pixels = images if graph["input"].get("raw_pixels") else (images >> 1).astype(np.int8)
    symbols, side = run_layers(body, pixels)
    return symbols.astype(np.uint8), protect(graph, np.concatenate([pack_symbols(symbols, pack["bits"]), side], axis=1))


def graph_fec(graph: dict) -> Fec | None:
    """The FEC a protected bundle's device applies to its packed code (radio.fec), or None."""
    fec = graph.get("fec")
    return None if fec is None else Fec(fec["rs_parity"], fec["interleave_depth"])


def sent_code_bytes(graph: dict) -> int:
    """Bytes of code the device sends per image: the packed code, or its FEC codeword in a protected bundle."""
    return graph["fec"]["sent_bytes"] if "fec" in graph else graph["code_bytes"]


def protect(graph: dict, payloads: np.ndarray) -> np.ndarray:
    """(N, code_bytes + side_bytes) packed codes and side bytes -> what the device sends: the code through
    the graph's FEC, if it has one, then the side bytes."""
    fec = graph_fec(graph)
    if fec is None:
        return payloads
    code_bytes = graph["code_bytes"]
    return np.concatenate([fec.encode(payloads[:, :code_bytes]), payloads[:, code_bytes:]], axis=1)
