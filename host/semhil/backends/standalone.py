"""C code for a device graph, standalone backend: weights as const arrays, one static arena, and a
device_half_run() that calls the kernels of device/kernels in graph order and times each layer.

The arena is used from both ends: a layer reads its input at one end and writes its output at the
other, with the conv's im2col scratch between them, so the arena is exactly the largest
input + output + scratch of any layer (graph.activation_lower_bound, up to 4-byte alignment)."""
from __future__ import annotations

import numpy as np

from ..errors import SemhilError
from .graph import IN_PLACE_OPS, SIDE_OPS, align4, elements, steps

GDN_MAX_CHANNELS = 64  # K_GDN_MAX_CHANNELS in device/kernels/kernels.h
SUPPORTED_OPS = ("conv2d", "maxpool", "select_channels", "local_dense", "gdn", "dequantize", "prelu", "energy_norm", "quantize", "crop", "pack")


def _ints(values) -> str:
    return ",".join(str(int(v)) for v in values)


def _floats(values) -> str:
    return ",".join(float(np.float32(v)).hex() + "f" for v in values)


def arena_plan(graph: dict) -> tuple[int, list[tuple[dict, int, int, int]]]:
    """(arena bytes, per layer (layer, input offset, output offset or -1 for the code buffer, scratch offset))."""
    layer_steps = steps(graph)
    size = max(align4(read) + align4(written) + scratch for _, read, written, scratch in layer_steps)
    offset = {0: lambda n: 0, 1: lambda n: size - align4(n)}
    plan, side = [], 0
    for layer, read, written, _ in layer_steps:
        src = offset[side](read)
        if layer["op"] in IN_PLACE_OPS:
            plan.append((layer, src, src, -1))
            continue
        if layer["op"] in ("pack", *SIDE_OPS):
            plan.append((layer, src, -1, -1))
            continue
        dst = offset[1 - side](written)
        plan.append((layer, src, dst, align4(read if side == 0 else written)))
        side = 1 - side
    return size, plan


def packed_weights(layer: dict) -> np.ndarray:
    """The conv's weights in the standalone kernel's layout (K_CONV2D_WEIGHT_BYTES in kernels.h): rows
    padded to a multiple of 4, channels in pairs, 4 values of one channel then 4 of the other."""
    (kh, kw), ic, oc = layer["kernel"], layer["in_shape"][2], layer["out_shape"][2]
    k, k4 = kh * kw * ic, align4(kh * kw * ic)
    w = np.zeros(((oc + 1) // 2 * 2, k4), np.int8)
    w[:oc, :k] = np.asarray(layer["weight"], np.int8).reshape(oc, k)
    return w.reshape(-1, 2, k4 // 4, 4).transpose(0, 2, 1, 3).ravel()


def _layer_code(layer: dict, name: str, src: str, dst: str, scratch: str) -> tuple[list[str], str]:
    """(static data, the call) of one layer."""
    op = layer["op"]
    if op == "conv2d":
        (ih, iw, ic), (oh, ow, oc) = layer["in_shape"], layer["out_shape"]
        (kh, kw), (sh, sw), (ph, pw) = layer["kernel"], layer["stride"], layer["padding"]
        data = [f"static const int8_t {name}_w[] = {{{_ints(packed_weights(layer))}}};",
                f"static const int8_t {name}_b[] = {{{_ints(layer['bias'])}}};",
                f"static const uint8_t {name}_bias_shift[] = {{{_ints(layer['bias_shift'])}}};",
                f"static const uint8_t {name}_out_shift[] = {{{_ints(layer['out_shift'])}}};",
                f"static const k_conv2d_t {name} = {{{ih}, {iw}, {ic}, {oh}, {ow}, {oc}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, "
                f"{layer['act_min']}, {layer['act_max']}, {name}_w, {name}_b, {name}_bias_shift, {name}_out_shift}};"]
        return data, f"k_conv2d_s8(&{name}, (const int8_t *){src}, (int8_t *){dst}, (int16_t *){scratch});"
    if op == "maxpool":
        (ih, iw, c), (oh, ow, _) = layer["in_shape"], layer["out_shape"]
        (kh, kw), (sh, sw), (ph, pw) = layer["kernel"], layer["stride"], layer["padding"]
        data = [f"static const k_maxpool_t {name} = {{{ih}, {iw}, {c}, {oh}, {ow}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}}};"]
        return data, f"k_maxpool_s8(&{name}, (const int8_t *){src}, (int8_t *){dst});"
    if op == "gdn":
        h, w, c = layer["shape"]
        if c > GDN_MAX_CHANNELS:
            raise SemhilError(f"layer {layer['name']}: GDN over {c} channels, the kernel supports at most {GDN_MAX_CHANNELS}")
        data = [f"static const float {name}_beta[] = {{{_floats(layer['beta'])}}};",
                f"static const float {name}_gamma[] = {{{_floats(layer['gamma'])}}};"]
        return data, f"k_gdn_s8_f32((const int8_t *){src}, (float *){dst}, {h * w}, {c}, {layer['in_dec']}, {name}_beta, {name}_gamma);"
    if op == "select_channels":
        h, w, c = layer["in_shape"]
        return [f"static const uint16_t {name}_channels[] = {{{_ints(layer['channels'])}}};"], \
            f"k_select_channels_s8((const int8_t *){src}, {h * w}, {c}, {name}_channels, {len(layer['channels'])}, (int8_t *){dst});"
    if op == "local_dense":
        h, w, c = layer["in_shape"]
        data = [f"static const uint16_t {name}_channels[] = {{{_ints(layer['channels'])}}};",
                f"static const float {name}_w[] = {{{_floats(layer['weight'])}}};",
                f"static const float {name}_b[] = {{{_floats(layer['bias'])}}};"]
        return data, (f"k_local_dense_s8_f32((const int8_t *){src}, {h * w}, {c}, {name}_channels, {len(layer['channels'])}, "
                      f"{layer['in_dec']}, {name}_w, {name}_b, {layer['outputs']}, {dst} + {layer['side_offset']});")
    if op == "dequantize":
        return [], f"k_dequantize_s8_f32((const int8_t *){src}, (float *){dst}, {elements(layer['shape'])}, {layer['in_dec']});"
    if op == "prelu":
        h, w, c = layer["shape"]
        return [f"static const float {name}_alpha[] = {{{_floats(layer['alpha'])}}};"], \
            f"k_prelu_f32((float *){src}, {h * w}, {c}, {name}_alpha);"
    if op == "energy_norm":
        return [], f"k_energy_norm_f32((float *){src}, {elements(layer['shape'])}, {_floats([layer['eps']])});"
    if op == "quantize":
        return [f"static const float {name}_centres[] = {{{_floats(layer['centres'])}}};"], \
            f"k_quantize_f32((const float *){src}, (uint8_t *){dst}, {elements(layer['shape'])}, {name}_centres, {len(layer['centres'])});"
    if op == "crop":
        (_, iw, c), (oh, ow, _) = layer["in_shape"], layer["out_shape"]
        return [], f"k_crop_u8((const uint8_t *){src}, {iw}, {c}, {layer['top']}, {layer['left']}, {oh}, {ow}, (uint8_t *){dst});"
    if op == "pack":
        return [], f"k_pack_bits((const uint8_t *){src}, {layer['n_symbols']}, {layer['bits']}, code);"
    raise SemhilError(f"layer {layer['name']}: op {op!r} has no standalone kernel (supported: {', '.join(SUPPORTED_OPS)})")


def generate(graph: dict, bundle_hash: str) -> dict[str, str]:
    """model.h and model.c of the standalone backend."""
    arena_bytes, plan = arena_plan(graph)
    at = lambda offset: "code" if offset < 0 else f"(arena + {offset})"  # noqa: E731
    names = ["input", *(layer["name"] for layer, *_ in plan)]
    n_pixels = elements(graph["input"]["shape"])
    take_input = (f"for (uint32_t i = 0; i < {n_pixels}; i++) arena[i] = image[i];" if graph["input"].get("raw_pixels")
                  else f"k_pixels_to_s8(image, (int8_t *)arena, {n_pixels});")
    data, body = [], [f"    {take_input}", "    LAYER_DONE(0);"]
    for i, (layer, src, dst, scratch) in enumerate(plan, start=1):
        layer_data, call = _layer_code(layer, f"l{i}", at(src), at(dst), at(scratch))
        data += layer_data
        body += [f"    {call} /* {layer['name']} */", f"    LAYER_DONE({i});"]
    source = "\n".join([
        f"/* Generated by semhil from bundle {bundle_hash}; do not edit. */",
        '#include "model.h"', '#include "kernels.h"', '#include "th_port.h"', "",
        *data, "",
        "static uint8_t arena[MODEL_ARENA_BYTES] __attribute__((aligned(4)));",
        f"const char *const device_half_layer_names[MODEL_LAYERS] = {{{', '.join(f'{chr(34)}{n}{chr(34)}' for n in names)}}};",
        "uint32_t device_half_layer_ticks[MODEL_LAYERS];", "",
        "int device_half_init(void)", "{", "    return 0;", "}", "",
        "uint32_t device_half_arena_bytes(void)", "{", "    return MODEL_ARENA_BYTES;", "}", "",
        "#define LAYER_DONE(i) (now = th_timer_ticks(), device_half_layer_ticks[i] = (uint32_t)(now - last), last = now)", "",
        "void device_half_run(const uint8_t *image, uint8_t *code)", "{",
        "    uint64_t last = th_timer_ticks(), now;", *body, "}", ""])
    return {"model.h": model_header(graph, bundle_hash, "standalone", arena_bytes, len(names)), "model.c": source}


def model_header(graph: dict, bundle_hash: str, backend: str, arena_bytes: int, n_layers: int) -> str:
    """model.h, the interface the firmware core (device/core/ee_main.c) calls, the same for every backend."""
    h, w, c = graph["input"]["shape"]
    return f"""/* Generated by semhil from bundle {bundle_hash}; do not edit. */
#ifndef SEMHIL_MODEL_H
#define SEMHIL_MODEL_H
#include <stdint.h>
#define MODEL_INPUT_BYTES {h * w * c}
#define MODEL_CODE_BYTES {graph['code_bytes'] + graph.get('side_bytes', 0)} /* the code, then the side bytes */
#define MODEL_ARENA_BYTES {arena_bytes}
#define MODEL_BUNDLE_HASH "{bundle_hash}"
#define MODEL_BACKEND "{backend}"
#define MODEL_INPUT_SHAPE "{h},{w},{c}"
#define MODEL_LAYERS {n_layers}
extern const char *const device_half_layer_names[MODEL_LAYERS];
extern uint32_t device_half_layer_ticks[MODEL_LAYERS]; /* timer ticks of each layer in the last device_half_run */
int device_half_init(void);           /* 0 when the model is ready to run, else a positive error code */
uint32_t device_half_arena_bytes(void);    /* activation memory the model uses */
void device_half_run(const uint8_t *image, uint8_t *code);
#endif
"""
