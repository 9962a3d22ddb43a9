"""C code for a device graph, standalone backend: the image is computed while its rows arrive.

The graph's leading convs and max-pools run as a row pipeline (device/kernels/row_pipeline.h), each
keeping only the rows it still needs; the per-pixel layers after them (channel selection, a local
predictor, GDN or dequantization, PReLU, the quantizer, the crop and the packer) run on each output
row as it comes, as a tail generated here. Energy normalisation needs the whole code map's energy:
its int8 input is kept (a quarter of the float map), the energy summed in the first pass, and the
float layers computed again in a second pass at the end, in the same order, so that the codes are
the simulator's bit for bit. plan() sizes every buffer before anything is built."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import SemhilError
from .c_data import floats, layer_data
from .graph import align4, elements

SPATIAL_OPS = ("conv2d", "maxpool")
INT8_TAIL_OPS = ("local_dense", "select_channels")
FLOAT_FIRST_OPS = ("gdn", "dequantize")
SUPPORTED_OPS = (*SPATIAL_OPS, *INT8_TAIL_OPS, *FLOAT_FIRST_OPS, "prelu", "energy_norm", "quantize", "crop", "pack")
TAIL_ORDER = ("local_dense or select_channels, then gdn or dequantize, then prelu, then energy_norm, then quantize, "
              "then crop, then pack")
FLOAT_MAP_MAX_BYTES = 16384  # energy normalisation keeps a float32 map up to this size, else the int8 map and computes again
MAX_KERNEL_H = 16  # K_CONV2D_MAX_KERNEL_H in device/kernels/kernels.h
C_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4, "float": 4}


@dataclass(frozen=True)
class Buffer:
    name: str   # its C name
    ctype: str
    count: int
    layer: str  # the graph layer it serves
    holds: str  # what it holds, for people

    @property
    def bytes(self) -> int:
        return self.count * C_BYTES[self.ctype]


@dataclass(frozen=True)
class Stage:
    index: int   # the layer's index in graph["layers"]
    layer: dict
    kind: str    # RP_CONV_WINDOW, RP_CONV_SUMS or RP_MAXPOOL
    ring: int    # rows kept in the ring (window: input rows; max-pool: output rows)


@dataclass(frozen=True)
class Plan:
    stages: list[Stage]
    tail: list[tuple[int, dict]]  # (index in graph["layers"], layer), the pack last
    row_shape: tuple[int, int, int]  # (height, width, channels) of the rows the tail takes
    buffers: list[Buffer]
    float_map: bool  # energy normalisation keeps the float32 map (else the int8 one)

    @property
    def arena_bytes(self) -> int:
        return sum(align4(b.bytes) for b in self.buffers)

    def layer_bytes(self) -> dict[str, int]:
        """The buffer bytes each layer holds."""
        out: dict[str, int] = {}
        for b in self.buffers:
            out[b.layer] = out.get(b.layer, 0) + b.bytes
        return out


@dataclass(frozen=True)
class ConvPeer:
    """Another library computing the convs' rows in this row pipeline (backends/cmsis_nn.py): every conv is
    then an RP_CONV_WINDOW stage whose rows the peer's function computes; the rest stays as generated here."""
    backend: str                                    # MODEL_BACKEND of its firmware
    include: str                                    # its device header
    layer_data: Callable[[dict, str], list[str]]    # (layer, C name) -> the layer's C data, a conv's row function with it
    conv_row: Callable[[str], str]                  # a conv's C name -> its row function (an rp_conv_row_t)
    buffers: Callable[[list[Stage]], list[Buffer]]  # its buffers, in place of the standalone convs' scratch
    init: Callable[[list[Stage]], list[str]]        # the body of device_half_init (returns 0 when ready)


def _conv_sums_allowed(layer: dict) -> bool:
    (kh, kw), (sh, _), (ph, _) = layer["kernel"], layer["stride"], layer["padding"]
    return kh <= sh and ph == 0 and kw * layer["in_shape"][2] % 4 == 0


def _stage_buffers(i: int, layer: dict, conv_sums: bool = True) -> tuple[Stage, list[Buffer], int]:
    """The stage of a conv or max-pool, its buffers, and the scratch bytes it needs. A conv keeps its
    kernel_h input rows or, where its kernel rows never overlap and that is smaller, one input row and
    its output row's sums; a max-pool keeps one input row and the output rows a row can still reach."""
    (ih, iw, ic), (oh, ow, oc) = layer["in_shape"], layer["out_shape"]
    (kh, kw), (sh, _) = layer["kernel"], layer["stride"]
    name, in_row = f"l{i + 1}", iw * ic
    if layer["op"] == "maxpool":
        ring = min(math.ceil(kh / sh), oh)
        return (Stage(i, layer, "RP_MAXPOOL", ring),
                [Buffer(f"{name}_in_row", "int8_t", in_row, layer["name"], "the input row"),
                 Buffer(f"{name}_rows", "int8_t", ring * ow * oc, layer["name"], f"{ring} output rows being pooled")], 0)
    if kh > MAX_KERNEL_H:
        raise SemhilError(f"layer {layer['name']}: a {kh}-row kernel; the standalone kernels take at most {MAX_KERNEL_H} rows")
    window = min(kh, ih) * in_row
    if conv_sums and _conv_sums_allowed(layer) and in_row + 4 * ow * oc < window:
        return (Stage(i, layer, "RP_CONV_SUMS", 1),
                [Buffer(f"{name}_in_row", "int8_t", in_row, layer["name"], "the input row"),
                 Buffer(f"{name}_sums", "int32_t", ow * oc, layer["name"], "the output row's sums")], 2 * 2 * align4(kw * ic))
    ring = min(kh, ih)
    return (Stage(i, layer, "RP_CONV_WINDOW", ring),
            [Buffer(f"{name}_rows", "int8_t", window, layer["name"], f"the last {ring} input rows")], 2 * 2 * align4(kh * kw * ic))


def _check_tail(tail: list[dict]) -> None:
    ops = [layer["op"] for layer in tail]
    rank = {"local_dense": 0, "select_channels": 0, "gdn": 1, "dequantize": 1, "prelu": 2, "energy_norm": 3, "quantize": 4,
            "crop": 5, "pack": 6}
    for op in ops:
        if op in SPATIAL_OPS:
            raise SemhilError(f"a {op} after a per-pixel layer cannot be streamed: the graph's layers are {', '.join(ops)}")
        if op not in rank:
            raise SemhilError(f"op {op!r} has no standalone kernel (supported: {', '.join(SUPPORTED_OPS)})")
    ranks = [rank[op] for op in ops]
    has_float = any(op in FLOAT_FIRST_OPS for op in ops)
    if ranks != sorted(ranks) or ops[-1] != "pack" or (has_float and "quantize" not in ops) \
            or (not has_float and any(op in ("prelu", "energy_norm", "quantize") for op in ops)):
        raise SemhilError(f"the standalone backend streams {TAIL_ORDER}; this graph's tail is {', '.join(ops)}")


def plan(graph: dict, conv_sums: bool = True, conv_buffers: Callable[[list[Stage]], list[Buffer]] | None = None) -> Plan:
    """The row pipeline, the tail and every buffer of the standalone firmware's model. conv_sums=False: every
    conv an RP_CONV_WINDOW stage; conv_buffers: a peer's buffers for the convs, in place of the shared scratch."""
    layers = graph["layers"]
    n_spatial = next((i for i, layer in enumerate(layers) if layer["op"] not in SPATIAL_OPS), len(layers))
    tail = list(enumerate(layers))[n_spatial:]
    _check_tail([layer for _, layer in tail])
    stages, buffers, scratch, scratch_owner = [], [], 0, None
    for i, layer in enumerate(layers[:n_spatial]):
        stage, stage_buffers, stage_scratch = _stage_buffers(i, layer, conv_sums)
        stages.append(stage)
        buffers += stage_buffers
        if stage_scratch > scratch:  # one scratch, shared by the convs: the largest
            scratch, scratch_owner = stage_scratch, layer["name"]
    if conv_buffers is not None:
        buffers += conv_buffers(stages)
    elif scratch:
        buffers.append(Buffer("conv_scratch", "int16_t", scratch // 2, scratch_owner, "im2col columns"))
    h, w, c_in = stages[-1].layer["out_shape"] if stages else graph["input"]["shape"]
    c = c_in  # channels of the tail's rows after a channel selection
    float_map = False
    last = stages[-1].layer["name"] if stages else "input"
    if stages or not graph["input"].get("raw_pixels"):
        buffers.append(Buffer("tail_in", "int8_t", w * c, last, "the output row"))
    for i, layer in tail:
        name = f"l{i + 1}"
        if layer["op"] == "local_dense":
            buffers.append(Buffer(f"{name}_sums", "float", layer["outputs"], layer["name"], "the outputs' sums"))
        elif layer["op"] == "select_channels":
            c = len(layer["channels"])
            buffers.append(Buffer(f"{name}_out", "int8_t", w * c, layer["name"], "the selected row"))
        elif layer["op"] in FLOAT_FIRST_OPS:
            float_map = any(later["op"] == "energy_norm" for _, later in tail) and 4 * h * w * c <= FLOAT_MAP_MAX_BYTES
            if not float_map:
                buffers.append(Buffer("float_row", "float", w * c, layer["name"], "the row in float32"))
        elif layer["op"] == "energy_norm" and float_map:
            buffers.append(Buffer("energy_map", "float", h * w * c, layer["name"], "the float32 map, for the second pass"))
        elif layer["op"] == "energy_norm":
            buffers.append(Buffer("energy_map", "int8_t", h * w * c, layer["name"], "the int8 map, computed again in the second pass"))
        elif layer["op"] == "quantize":
            buffers.append(Buffer("symbols", "uint8_t", w * c, layer["name"], "the row's symbols"))
    return Plan(stages, tail, (h, w, c_in), buffers, float_map)


def _assignments(target: str, fields: list[tuple[str, object]]) -> list[str]:
    return [f"    {target}.{field} = {value};" for field, value in fields]


def _stage_init(stage: Stage, i: int, peer: ConvPeer | None = None) -> list[str]:
    """The statements that set stages[i] (its layer's data, buffers and conv row function)."""
    name = f"l{stage.index + 1}"
    fields = [("kind", stage.kind), ("layer", stage.index + 1), ("ring", stage.ring),
              ("conv" if stage.layer["op"] == "conv2d" else "pool", f"&{name}")]
    if stage.kind == "RP_CONV_WINDOW":
        fields.append(("conv_row", peer.conv_row(name) if peer else name + "_row"))
    if stage.kind != "RP_CONV_SUMS":
        fields.append(("rows", f"{name}_rows"))
    if stage.kind != "RP_CONV_WINDOW":
        fields.append(("in_row", f"{name}_in_row"))
    if stage.kind == "RP_CONV_SUMS":
        fields += [("sums", f"{name}_sums"), ("conv_sum_row", f"{name}_sum_row")]
    return [f"    /* {stage.layer['name']} */", *_assignments(f"stages[{i}]", fields)]


def layer_names(names: list[str]) -> str:
    """The layers' names as one C string, each ended by a NUL (no table of pointers to relocate)."""
    return f'const char device_half_layer_names[] = "{"".join(n + chr(92) + "000" for n in names)}";'



def _conv_instance(stage: Stage) -> str:
    """The stage's conv kernel instantiated with its shape as constants (device/kernels/kernels_fixed.h)."""
    layer, name = stage.layer, f"l{stage.index + 1}"
    (ih, iw, ic), (_, ow, oc) = layer["in_shape"], layer["out_shape"]
    (kh, kw), (sh, sw), (ph, pw) = layer["kernel"], layer["stride"], layer["padding"]
    shift = layer["out_shift"][0] if len(set(layer["out_shift"])) == 1 else -1
    shape = ", ".join(map(str, (ih, iw, ic, ow, oc, kh, kw, sh, sw, ph, pw, layer["act_min"], layer["act_max"], shift)))
    if stage.kind == "RP_CONV_SUMS":
        return f"K_CONV2D_SUM_ROW_FIXED({name}_sum_row, {shape})"
    return f"K_CONV2D_ROW_FIXED({name}_row, {shape})"


def _tail_code(p: Plan, graph: dict) -> tuple[list[str], list[str], list[str]]:
    """(tail_row, the second pass at the end, the begin's resets) of the per-pixel layers."""
    h, w, c = p.row_shape
    energy = next((i for i, layer in p.tail if layer["op"] == "energy_norm"), None)
    float_map = p.float_map
    first_pass, second_pass, begin = [], [], []
    src, sym, n, channels = "row", None, w * c, c
    floats_at = "float_row"
    current = first_pass
    for i, layer in p.tail:
        op, name, tick = layer["op"], f"l{i + 1}", i + 1
        timed = lambda call: f"    TIMED({tick}, {call});"  # noqa: E731
        if op == "local_dense":
            outputs, count = layer["outputs"], len(layer["channels"])
            begin.append(f"    for (uint32_t j = 0; j < {outputs}; j++) {name}_sums[j] = {name}_b[j];")
            current.append(timed(f"k_local_dense_rows_s8_f32({src}, {w}, {channels}, {name}_channels, {count}, {layer['in_dec']}, "
                                 f"{name}_w + y * {w * count}, {h * w * count}, {outputs}, {name}_sums)"))
        elif op == "select_channels":
            count = len(layer["channels"])
            current.append(timed(f"k_select_channels_s8({src}, {w}, {channels}, {name}_channels, {count}, {name}_out)"))
            src, channels, n = f"{name}_out", count, w * count
        elif op in FLOAT_FIRST_OPS:
            floats_at = f"energy_map + y * {n}" if float_map else "float_row"
            if energy is not None and not float_map:
                first_pass.append(f"    TIMED({energy + 1}, memcpy(energy_map + y * {n}, {src}, {n}));")
            call = (f"{name}_gdn({src}, {floats_at}, {w}, {name}_beta, {name}_gamma)" if op == "gdn"
                    else f"k_dequantize_s8_f32({src}, {floats_at}, {n}, {layer['in_dec']})")
            first_pass.append(timed(call))
            if energy is not None and not float_map:
                second_pass.append(timed(call.replace(f"({src},", f"(energy_map + y * {n},")))
        elif op == "prelu":
            call = timed(f"k_prelu_f32({floats_at}, {w}, {channels}, {name}_alpha)")
            first_pass.append(call)
            if energy is not None and not float_map:
                second_pass.append(call)
        elif op == "energy_norm":
            first_pass.append(timed(f"energy = k_sum_squares_f32({floats_at}, {n}, energy)"))
            second_pass.append(timed(f"k_divide_f32({floats_at}, {n}, energy_scale)"))
            begin.append("    energy = 0.0f;")
            current = second_pass
        elif op == "quantize":
            current.append(timed(f"k_quantize_thresholds_f32({floats_at}, symbols, {n}, &{name})"))
            sym = "symbols"
        elif op == "crop":
            (top, left), (oh, ow, _) = (layer["top"], layer["left"]), layer["out_shape"]
            outside = [*([f"y < {top}"] if top > 0 else []), *([f"y >= {top + oh}"] if top + oh < h else [])]
            if outside:
                current.append(f"    if ({' || '.join(outside)})\n        return;")
            sym, n = f"{sym or f'(const uint8_t *){src}'} + {left * channels}", ow * channels
        elif op == "pack":
            current.append(timed(f"code_bits = k_pack_bits_at({sym or f'(const uint8_t *){src}'}, {n}, {layer['bits']}, code, code_bits)"))
    return first_pass, second_pass, begin


def generate(graph: dict, bundle_hash: str, peer: ConvPeer | None = None) -> dict[str, str]:
    """model.h and model.c of the standalone backend; with a peer, of the peer's backend (its convs, all windows)."""
    p = plan(graph, conv_sums=peer is None, conv_buffers=peer.buffers if peer else None)
    h, w, c = graph["input"]["shape"]
    row_bytes = w * c
    raw = graph["input"].get("raw_pixels")
    names = ["input", *(layer["name"] for layer in graph["layers"])]
    data = [line for i, layer in enumerate(graph["layers"]) for line in (peer.layer_data if peer else layer_data)(layer, f"l{i + 1}")]
    buffers = [f"SEMHIL_STATIC {b.ctype} {b.name}[{b.count}] __attribute__((aligned(4))); /* {b.layer}: {b.holds} */" for b in p.buffers]
    first_pass, second_pass, begin = _tail_code(p, graph)
    energy = next((layer for _, layer in p.tail if layer["op"] == "energy_norm"), None)
    side = [f"    memcpy(code + {layer['side_offset']}, l{i + 1}_sums, {4 * layer['outputs']});" for i, layer in p.tail
            if layer["op"] == "local_dense"]
    if p.stages:
        instances = [] if peer else [_conv_instance(s) for s in p.stages if s.layer["op"] == "conv2d"]
        pipeline = [*instances, "", f"SEMHIL_STATIC rp_stage_t stages[{len(p.stages)}];", "SEMHIL_STATIC rp_pipeline_t pipeline;"]
        scratch = "conv_scratch" if any(b.name == "conv_scratch" for b in p.buffers) else "0"
        # set here, not by initialisers: a MicroPython module cannot relocate initialised pointers to RAM
        init = [*(line for i, stage in enumerate(p.stages) for line in _stage_init(stage, i, peer)),
                *_assignments("pipeline", [("stages", "stages"), ("n_stages", len(p.stages)), ("tail_in", "tail_in"),
                                           ("tail", "tail_row"), ("scratch", scratch), ("ticks", "device_half_layer_ticks")])]
        take_row = [f"        TIMED(0, {'memcpy(rp_input_slot(&pipeline), pixels, ' + str(row_bytes) + ')' if raw else f'k_pixels_to_s8(pixels, rp_input_slot(&pipeline), {row_bytes})'});",
                    "        rp_input_row(&pipeline);"]
    else:
        pipeline, init = [], []
        take_row = ["        tail_row((const int8_t *)pixels, rows_in);"] if raw else \
            [f"        TIMED(0, k_pixels_to_s8(pixels, tail_in, {row_bytes}));", "        tail_row(tail_in, rows_in);"]
    end = []
    if energy is not None:
        n = elements(energy["shape"])
        end = [f"    TIMED({graph['layers'].index(energy) + 1}, energy_scale = sqrtf(energy / (float){n} + {floats([energy['eps']])}));",
               f"    for (uint32_t y = 0; y < {p.row_shape[0]}; y++)", "        second_pass(y);"]
    source = "\n".join([
        f"/* Generated by semhil from bundle {bundle_hash}; do not edit. */",
        "#include <math.h>", "#include <string.h>", "",
        '#include "kernels.h"', '#include "kernels_fixed.h"', '#include "model.h"', '#include "row_pipeline.h"', '#include "th_port.h"',
        *([f'#include "{peer.include}"'] if peer else []), "",
        *data, "", *buffers, "",
        layer_names(names),
        "uint32_t device_half_layer_ticks[MODEL_LAYERS];",
        "SEMHIL_STATIC uint8_t *code;       /* the caller's code buffer */",
        "SEMHIL_STATIC uint32_t code_bits;  /* bits of it written */",
        "SEMHIL_STATIC uint32_t rows_in;    /* rows of the image received */",
        *(["SEMHIL_STATIC float energy, energy_scale;"] if energy is not None else []), "",
        "#define TIMED(layer, call) RP_TIMED(device_half_layer_ticks, layer, call)", "",
        *(f"K_GDN_FIXED(l{i + 1}_gdn, {layer['shape'][2]}, {layer['in_dec']})" for i, layer in p.tail if layer["op"] == "gdn"), "",
        *([] if energy is None else ["/* The layers after energy normalisation, on row y of the map, computed again from its int8 values. */",
                                     "static void second_pass(uint32_t y)", "{", *second_pass, "}", ""]),
        "/* Output row y of the pipeline (or of the input), through the per-pixel layers. */",
        "static void tail_row(const int8_t *row, uint32_t y)", "{", "    (void)row, (void)y;", *first_pass, "}", "",
        *pipeline, "",
        "int device_half_init(void)", "{", *init, *(peer.init(p.stages) if peer else ["    return 0;"]), "}", "",
        "uint32_t device_half_arena_bytes(void)", "{", "    return MODEL_ARENA_BYTES;", "}", "",
        "void device_half_begin(uint8_t *code_buffer)", "{",
        "    code = code_buffer;", "    code_bits = 0;", "    rows_in = 0;",
        "    memset(code, 0, MODEL_PACKED_BYTES);",
        "    memset(device_half_layer_ticks, 0, sizeof device_half_layer_ticks);",
        *(["    rp_begin(&pipeline);"] if p.stages else []), *begin, "}", "",
        "void device_half_rows(const uint8_t *pixels, uint32_t n_rows)", "{",
        f"    for (; n_rows > 0 && rows_in < MODEL_INPUT_ROWS; n_rows--, rows_in++, pixels += {row_bytes}) {{",
        *take_row, "    }", "}", "",
        "void device_half_end(void)", "{", *end, *side, "}", ""])
    return {"model.h": model_header(graph, bundle_hash, peer.backend if peer else "standalone", p.arena_bytes, len(names)),
            "model.c": source}


def fec_defines(graph: dict) -> str:
    """What the protocol loop sends (MODEL_CODE_BYTES: the code as it goes on the air, then the side bytes) and,
    for a protected bundle, the FEC the core applies to the packed code (device/core/ee_fec.h)."""
    fec, side = graph.get("fec"), graph.get("side_bytes", 0)
    if fec is None:
        return "#define MODEL_CODE_BYTES MODEL_PACKED_BYTES\n#define MODEL_FEC 0"
    return "\n".join([f"#define MODEL_CODE_BYTES {fec['sent_bytes'] + side} /* the code after FEC, then the side bytes */",
                      "#define MODEL_FEC 1", f"#define MODEL_FEC_CODE_BYTES {graph['code_bytes']}",
                      f"#define MODEL_FEC_RS_PARITY {fec['rs_parity']}", f"#define MODEL_FEC_INTERLEAVE_DEPTH {fec['interleave_depth']}"])


def model_header(graph: dict, bundle_hash: str, backend: str, arena_bytes: int, n_layers: int) -> str:
    """model.h, the interface the protocol loop (device/core/ee_serve.c) calls, the same for every backend."""
    h, w, c = graph["input"]["shape"]
    return f"""/* Generated by semhil from bundle {bundle_hash}; do not edit. */
#ifndef SEMHIL_MODEL_H
#define SEMHIL_MODEL_H
#include <stdint.h>
#define MODEL_INPUT_BYTES {h * w * c}
#define MODEL_INPUT_ROWS {h}
#define MODEL_ROW_BYTES {w * c}
#define MODEL_PACKED_BYTES {graph['code_bytes'] + graph.get('side_bytes', 0)} /* the packed code, then the side bytes */
{fec_defines(graph)}
#define MODEL_ARENA_BYTES {arena_bytes}
#define MODEL_BUNDLE_HASH "{bundle_hash}"
#define MODEL_BACKEND "{backend}"
#define MODEL_INPUT_SHAPE "{h},{w},{c}"
#define MODEL_LAYERS {n_layers}
extern const char device_half_layer_names[]; /* MODEL_LAYERS names, each ended by a NUL */
extern uint32_t device_half_layer_ticks[MODEL_LAYERS]; /* timer ticks of each layer over the last image */
int device_half_init(void);              /* 0 when the model is ready to run, else a positive error code */
uint32_t device_half_arena_bytes(void);  /* activation memory the model uses */
/* One image: begin, its rows in order (MODEL_ROW_BYTES each, any number per call), then end, which
 * finishes the code (MODEL_PACKED_BYTES: the packed code, then the side bytes) in the buffer begin was given. */
void device_half_begin(uint8_t *code);
void device_half_rows(const uint8_t *pixels, uint32_t n_rows);
void device_half_end(void);
#endif
"""
