"""C code for a device graph, standalone backend: weights as const arrays, one static arena,
and a model_run() that calls the kernels of device/kernels in graph order."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SemhilError

GDN_MAX_CHANNELS = 64  # K_GDN_MAX_CHANNELS in device/kernels/kernels.h


def _ints(values) -> str:
    return ",".join(str(int(v)) for v in values)


def _floats(values) -> str:
    return ",".join(float(np.float32(v)).hex() + "f" for v in values)


def _elements(shape) -> int:
    return int(np.prod(shape))


def _plan(graph: dict) -> list[tuple[dict, int, int]]:
    """Per layer: (layer, input slot, output slot); slot 0/1 are the two halves of the arena
    (ping-pong), -1 is the caller's code buffer. PReLU and energy normalisation work in place."""
    plan, slot = [], 0
    for layer in graph["layers"]:
        if layer["op"] in ("prelu", "energy_norm"):
            plan.append((layer, slot, slot))
        elif layer["op"] == "pack":
            plan.append((layer, slot, -1))
        else:
            plan.append((layer, slot, 1 - slot))
            slot = 1 - slot
    return plan


def _output_bytes(layer: dict) -> int:
    op = layer["op"]
    if op == "conv2d":
        return _elements(layer["out_shape"])
    if op in ("gdn", "prelu", "energy_norm"):
        return 4 * _elements(layer["shape"])
    if op == "quantize":
        return _elements(layer["shape"])
    if op == "crop":
        return _elements(layer["out_shape"])
    return 0


def arena_halves(graph: dict) -> tuple[int, int]:
    sizes = [_elements(graph["input"]["shape"]), 0]
    for layer, _, out in _plan(graph):
        if out >= 0:
            sizes[out] = max(sizes[out], _output_bytes(layer))
    return tuple((s + 3) // 4 * 4 for s in sizes)


def generate_model(graph: dict, bundle_hash: str, out_dir: Path) -> Path:
    """Write model.h and model.c for `graph` into out_dir; returns out_dir."""
    half0, half1 = arena_halves(graph)
    buf = {0: "arena", 1: f"(arena + {half0})", -1: "code"}
    data, body = [], [f"    k_pixels_to_s8(image, (int8_t *)arena, {_elements(graph['input']['shape'])});"]
    for i, (layer, src, dst) in enumerate(_plan(graph)):
        op, name = layer["op"], f"l{i}"
        if op == "conv2d":
            (ih, iw, ic), (oh, ow, oc) = layer["in_shape"], layer["out_shape"]
            data += [f"static const int8_t {name}_w[] = {{{_ints(layer['weight'])}}};",
                     f"static const int8_t {name}_b[] = {{{_ints(layer['bias'])}}};",
                     f"static const k_conv2d_t {name} = {{{ih}, {iw}, {ic}, {oh}, {ow}, {oc}, "
                     f"{layer['kernel'][0]}, {layer['kernel'][1]}, {layer['stride'][0]}, {layer['stride'][1]}, "
                     f"{layer['padding'][0]}, {layer['padding'][1]}, {layer['bias_shift']}, {layer['out_shift']}, "
                     f"{int(layer['relu'])}, {name}_w, {name}_b}};"]
            body.append(f"    k_conv2d_s8(&{name}, (const int8_t *){buf[src]}, (int8_t *){buf[dst]}); /* {layer['name']} */")
        elif op == "gdn":
            h, w, c = layer["shape"]
            if c > GDN_MAX_CHANNELS:
                raise SemhilError(f"layer {layer['name']}: GDN over {c} channels, the kernel supports at most {GDN_MAX_CHANNELS}")
            data += [f"static const float {name}_beta[] = {{{_floats(layer['beta'])}}};",
                     f"static const float {name}_gamma[] = {{{_floats(layer['gamma'])}}};"]
            body.append(f"    k_gdn_s8_f32((const int8_t *){buf[src]}, (float *){buf[dst]}, {h * w}, {c}, {layer['in_dec']}, {name}_beta, {name}_gamma);")
        elif op == "prelu":
            h, w, c = layer["shape"]
            data.append(f"static const float {name}_alpha[] = {{{_floats(layer['alpha'])}}};")
            body.append(f"    k_prelu_f32((float *){buf[src]}, {h * w}, {c}, {name}_alpha);")
        elif op == "energy_norm":
            body.append(f"    k_energy_norm_f32((float *){buf[src]}, {_elements(layer['shape'])}, {_floats([layer['eps']])});")
        elif op == "quantize":
            data.append(f"static const float {name}_centres[] = {{{_floats(layer['centres'])}}};")
            body.append(f"    k_quantize_f32((const float *){buf[src]}, (uint8_t *){buf[dst]}, {_elements(layer['shape'])}, "
                        f"{name}_centres, {len(layer['centres'])});")
        elif op == "crop":
            (ih, iw, c), (oh, ow, _) = layer["in_shape"], layer["out_shape"]
            body.append(f"    k_crop_u8((const uint8_t *){buf[src]}, {iw}, {c}, {layer['top']}, {layer['left']}, {oh}, {ow}, (uint8_t *){buf[dst]});")
        elif op == "pack":
            body.append(f"    k_pack_bits((const uint8_t *){buf[src]}, {layer['n_symbols']}, {layer['bits']}, code);")
        else:
            raise SemhilError(f"layer {layer['name']}: op {op!r} has no standalone kernel (supported: conv2d, gdn, prelu, energy_norm, quantize, crop, pack)")
    h, w, c = graph["input"]["shape"]
    header = f"""/* Generated by semhil from bundle {bundle_hash}; do not edit. */
#ifndef SEMHIL_MODEL_H
#define SEMHIL_MODEL_H
#include <stdint.h>
#define MODEL_INPUT_BYTES {h * w * c}
#define MODEL_CODE_BYTES {graph['code_bytes']}
#define MODEL_ARENA_BYTES {half0 + half1}
#define MODEL_BUNDLE_HASH "{bundle_hash}"
#define MODEL_BACKEND "standalone"
#define MODEL_INPUT_SHAPE "{h},{w},{c}"
void model_run(const uint8_t *image, uint8_t *code);
#endif
"""
    source = "\n".join([
        f"/* Generated by semhil from bundle {bundle_hash}; do not edit. */",
        '#include "model.h"', '#include "kernels.h"', "",
        *data, "",
        "static uint8_t arena[MODEL_ARENA_BYTES] __attribute__((aligned(4)));", "",
        "void model_run(const uint8_t *image, uint8_t *code)", "{", *body, "}", ""])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.h").write_text(header)
    (out_dir / "model.c").write_text(source)
    return out_dir
