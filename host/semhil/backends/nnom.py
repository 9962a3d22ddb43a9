"""C code for a device graph, nnom backend: NNoM's structured API (input_s, conv2d_s, maxpool_s,
output_s) with the encoder's float tail, if any, and ReLU6 where it clips, as lambda_s layers that call
the standalone kernels. NNoM runs from a static buffer; a callback after each layer times it.

NNoM's own ReLU6 (act_adv_relu with max 6) scales the limit by 2^(7 - dec) instead of 2^dec, so
ReLU6 becomes a lambda layer whenever 6 is representable (dec <= 4) and plain act_relu otherwise."""
from __future__ import annotations

import math

from ..errors import SemhilError
from .graph import IN_PLACE_OPS, elements
from .c_data import floats, ints as _ints, layer_data
from .standalone import layer_names, model_header

NNOM_OPS = ("conv2d", "maxpool")
INT8_TAIL_OPS = ("local_dense", "select_channels")
FLOAT_TAIL_FIRST = ("gdn", "dequantize")
SUPPORTED_OPS = (*NNOM_OPS, *INT8_TAIL_OPS, *FLOAT_TAIL_FIRST, *IN_PLACE_OPS, "quantize", "crop", "pack")


def _padding_type(layer: dict) -> str:
    """NNoM's padding type giving the graph's padding and output size, or an error naming the layer."""
    (ih, iw, _), (oh, ow, _) = layer["in_shape"], layer["out_shape"]
    (kh, kw), (sh, sw), pad = layer["kernel"], layer["stride"], list(layer["padding"])
    if pad == [(kh - 1) // 2, (kw - 1) // 2] and [oh, ow] == [math.ceil(ih / sh), math.ceil(iw / sw)]:
        return "PADDING_SAME"
    if pad == [0, 0] and [oh, ow] == [math.ceil((ih - kh + 1) / sh), math.ceil((iw - kw + 1) / sw)]:
        return "PADDING_VALID"
    raise SemhilError(f"layer {layer['name']}: padding {pad} with kernel {kh}x{kw} and stride {sh}x{sw} is neither NNoM's "
                      "SAME (padding (k-1)/2, output ceil(in/stride)) nor VALID; use the standalone backend")


def _tensor(name: str, data: str, dims, decs, qtype: str = "NNOM_QTYPE_PER_TENSOR") -> list[str]:
    return [f"static const nnom_shape_data_t {name}_dim[] = {{{_ints(dims)}}};",
            f"static const nnom_qformat_param_t {name}_dec[] = {{{_ints(decs)}}};",
            f"static const nnom_qformat_param_t {name}_offset[] = {{{_ints([0] * len(decs))}}};",
            f"static const nnom_tensor_t {name} = {{.p_data = (void *){data}, .dim = (nnom_shape_data_t *){name}_dim, "
            f".q_dec = (nnom_qformat_param_t *){name}_dec, .q_offset = (nnom_qformat_param_t *){name}_offset, "
            f".qtype = {qtype}, .num_dim = {len(dims)}, .bitwidth = 8}};"]


def _conv(layer: dict, n: str) -> tuple[list[str], list[str], list[str]]:
    """(static data, creation lines, layer names) of a conv and its activation."""
    (kh, kw), (sh, sw) = layer["kernel"], layer["stride"]
    oc = layer["out_shape"][2]
    qtype = "NNOM_QTYPE_PER_AXIS" if layer["per_channel"] else "NNOM_QTYPE_PER_TENSOR"
    per = (lambda v: v) if layer["per_channel"] else (lambda v: v[:1])  # noqa: E731
    data = [f"static const int8_t {n}_w_data[] = {{{_ints(layer['weight'])}}};",
            f"static const int8_t {n}_b_data[] = {{{_ints(layer['bias'])}}};",
            *_tensor(f"{n}_w", f"{n}_w_data", [kh, kw, layer["in_shape"][2], oc], per(layer["w_dec"]), qtype),
            *_tensor(f"{n}_b", f"{n}_b_data", [oc], per(layer["b_dec"]), qtype),
            f"static const nnom_qformat_param_t {n}_out_shift[] = {{{_ints(per(layer['out_shift']))}}};",
            f"static const nnom_qformat_param_t {n}_bias_shift[] = {{{_ints(per(layer['bias_shift']))}}};",
            f'static const nnom_conv2d_config_t {n}_config = {{.super = {{.name = "{layer["name"]}"}}, .qtype = {qtype}, '
            f".weight = (nnom_tensor_t *)&{n}_w, .bias = (nnom_tensor_t *)&{n}_b, "
            f".output_shift = (nnom_qformat_param_t *){n}_out_shift, .bias_shift = (nnom_qformat_param_t *){n}_bias_shift, "
            f".filter_size = {oc}, .kernel_size = {{{kh}, {kw}}}, .stride_size = {{{sh}, {sw}}}, .padding_size = {{0, 0}}, "
            f".dilation_size = {{1, 1}}, .padding_type = {_padding_type(layer)}}};"]
    create, names = [f"    ADD(conv2d_s(&{n}_config));"], [layer["name"]]
    if layer["act"] == "relu" or (layer["act"] == "relu6" and layer["act_max"] == 127):
        create.append("    ACTIVATE(act_relu());")
    elif layer["act"] == "relu6":
        data += [f"static const int8_t {n}_relu6_max = {layer['act_max']};",
                 f'static const nnom_lambda_config_t {n}_relu6_config = {{.super = {{.name = "{layer["name"]}.relu6"}}, '
                 f".run_func_name = relu6_run, .parameters = (void *)&{n}_relu6_max}};"]
        create.append(f"    ADD(lambda_s(&{n}_relu6_config));")
        names.append(f"{layer['name']}.relu6")
    return data, create, names


def _maxpool(layer: dict, n: str) -> list[str]:
    (kh, kw), (sh, sw) = layer["kernel"], layer["stride"]
    return [f'static const nnom_pool_config_t {n}_config = {{.super = {{.name = "{layer["name"]}"}}, '
            f".padding_type = {_padding_type(layer)}, .output_shift = 0, .kernel_size = {{{kh}, {kw}}}, "
            f".stride_size = {{{sh}, {sw}}}, .num_dim = 2}};"]


def _tail(tail: list[dict]) -> list[str]:
    """The lambda layer of what follows NNoM's layers: int8 ops first (a local predictor writing side
    bytes, a channel selection), then the float tail (GDN or a dequantization, PReLU, energy
    normalisation, the quantizer), calling the standalone kernels; uint8 symbols out, a float32 scratch
    as the layer's computational buffer (so NNoM's memory planner accounts for it)."""
    n_int8 = next((i for i, layer in enumerate(tail) if layer["op"] not in INT8_TAIL_OPS), len(tail))
    float_ops = [layer["op"] for layer in tail[n_int8:]]
    if not float_ops or float_ops[0] not in FLOAT_TAIL_FIRST or float_ops[-1] != "quantize" or any(op not in IN_PLACE_OPS for op in float_ops[1:-1]):
        raise SemhilError(f"the nnom backend runs {' and '.join(INT8_TAIL_OPS)}, then {' or '.join(FLOAT_TAIL_FIRST)}, then "
                          f"{', '.join(IN_PLACE_OPS)}, then quantize; this graph has {', '.join(l['op'] for l in tail)}")
    data, calls, out_channels = [], [], []
    for i, layer in enumerate(tail):
        if layer["op"] == "select_channels":
            data.append(f"static int8_t selected[{elements(layer['out_shape'])}];")
            out_channels = [f"    layer->out->tensor->dim[2] = {layer['out_shape'][2]};"]
        src = "q" if i <= n_int8 else "x"
        dst = {"local_dense": "side_code", "select_channels": "selected", "quantize": "layer->out->tensor->p_data"}.get(layer["op"], "x")
        data += layer_data(layer, f"tail{i}")
        call = _tail_call(layer, f"tail{i}", src, dst)
        calls += [f"    {call}", *(["    q = selected;"] if layer["op"] == "select_channels" else [])]
    return [
        *data,
        "static nnom_status_t tail_build(nnom_layer_t *layer)",
        "{",
        "    default_build(layer);",
        *out_channels,
        "    layer->comp = nnom_mem(sizeof(nnom_buf_t));",
        "    if (layer->comp == NULL)",
        "        return NN_NO_MEMORY;",
        "    layer->comp->type = NNOM_TENSOR_BUF_TEMP;",
        f"    layer->comp->size = {4 * elements(tail[n_int8]['shape'])};",
        "    return NN_SUCCESS;",
        "}",
        "static nnom_status_t tail_run(nnom_layer_t *layer)",
        "{",
        "    const int8_t *q = layer->in->tensor->p_data;",
        "    float *x = (float *)layer->comp->mem->blk;",
        *calls,
        "    (void)q;",
        "    return NN_SUCCESS;",
        "}",
        f'static const nnom_lambda_config_t tail_config = {{.super = {{.name = "{tail[0]["name"]}"}}, .run_func_name = tail_run, '
        ".build_func_name = tail_build};",
    ]


def _tail_call(layer: dict, name: str, src: str, dst: str) -> str:
    """The call of one tail layer's standalone kernel on the whole tensor."""
    op, shape = layer["op"], layer.get("shape") or layer.get("in_shape")
    pixels, channels = shape[0] * shape[1], shape[2]
    calls = {
        "select_channels": lambda: f"k_select_channels_s8((const int8_t *){src}, {pixels}, {channels}, {name}_channels, "
                                   f"{len(layer['channels'])}, (int8_t *){dst});",
        "local_dense": lambda: f"k_local_dense_s8_f32((const int8_t *){src}, {pixels}, {channels}, {name}_channels, "
                               f"{len(layer['channels'])}, {layer['in_dec']}, {name}_w, {name}_b, {layer['outputs']}, "
                               f"{dst} + {layer['side_offset']});",
        "gdn": lambda: f"k_gdn_s8_f32((const int8_t *){src}, (float *){dst}, {pixels}, {channels}, {layer['in_dec']}, "
                       f"{name}_beta, {name}_gamma);",
        "dequantize": lambda: f"k_dequantize_s8_f32((const int8_t *){src}, (float *){dst}, {pixels * channels}, {layer['in_dec']});",
        "prelu": lambda: f"k_prelu_f32((float *){src}, {pixels}, {channels}, {name}_alpha);",
        "energy_norm": lambda: f"k_energy_norm_f32((float *){src}, {pixels * channels}, {floats([layer['eps']])});",
        "quantize": lambda: f"k_quantize_thresholds_f32((const float *){src}, (uint8_t *){dst}, {pixels * channels}, &{name});",
    }
    return calls[op]()


WHOLE_IMAGE = [  # NNoM runs on the whole image: its rows are gathered, then the model runs at the end
    "static uint8_t *image_code;", "static uint32_t rows_in;", "",
    "void device_half_begin(uint8_t *code)", "{", "    image_code = code;", "    rows_in = 0;",
    "    for (uint32_t i = 0; i < MODEL_LAYERS; i++)", "        device_half_layer_ticks[i] = 0;", "}", "",
    "void device_half_rows(const uint8_t *pixels, uint32_t n_rows)", "{",
    "    const uint64_t start = th_timer_ticks();",
    "    k_pixels_to_s8(pixels, input_data + rows_in * MODEL_ROW_BYTES, n_rows * MODEL_ROW_BYTES);",
    "    rows_in += n_rows;",
    "    device_half_layer_ticks[0] += (uint32_t)(th_timer_ticks() - start);", "}", "",
    "void device_half_end(void)", "{", "    run_whole(image_code);", "}", ""]


RELU6_RUN = """__attribute__((unused)) static nnom_status_t relu6_run(nnom_layer_t *layer)
{
    const int8_t max = *(const int8_t *)((nnom_lambda_layer_t *)layer)->parameters;
    const int8_t *in = layer->in->tensor->p_data;
    int8_t *out = layer->out->tensor->p_data;
    for (uint32_t i = 0; i < tensor_size(layer->out->tensor); i++)
        out[i] = in[i] < 0 ? 0 : (in[i] > max ? max : in[i]);
    return NN_SUCCESS;
}"""


SIZING_ARENA_BYTES = 1 << 20  # NNoM's static buffer while build.py measures what the model takes


def generate(graph: dict, bundle_hash: str, arena_bytes: int = SIZING_ARENA_BYTES) -> dict[str, str]:
    """model.h and model.c of the nnom backend; arena_bytes sizes NNoM's static buffer."""
    if graph["input"].get("raw_pixels"):
        raise SemhilError("this device half sends the raw pixels: it has no layer for NNoM to run; use the standalone backend")
    *body, pack = graph["layers"]
    crop = body.pop() if body[-1]["op"] == "crop" else None
    n_nnom = next((i for i, layer in enumerate(body) if layer["op"] not in NNOM_OPS), len(body))
    nnom_layers, tail = body[:n_nnom], body[n_nnom:]
    h, w, c = graph["input"]["shape"]
    code_shape = crop["in_shape"] if crop else graph["code_shape"]
    out_dec = 0 if tail else nnom_layers[-1].get("out_dec", nnom_layers[-1].get("dec"))
    data = [*_tensor("input", "input_data", [h, w, c], [graph["input"]["dec"]]),
            'static const nnom_io_config_t input_config = {.super = {.name = "input"}, .tensor = (nnom_tensor_t *)&input};',
            *_tensor("output", "symbols", code_shape, [out_dec]),
            'static const nnom_io_config_t output_config = {.super = {.name = "output"}, .tensor = (nnom_tensor_t *)&output};']
    create, names = ["    ADD(input_s(&input_config));"], ["input"]
    for i, layer in enumerate(nnom_layers, start=1):
        if layer["op"] == "conv2d":
            its_data, its_create, its_names = _conv(layer, f"l{i}")
        elif layer["op"] == "maxpool":
            its_data, its_create, its_names = _maxpool(layer, f"l{i}"), [f"    ADD(maxpool_s(&l{i}_config));"], [layer["name"]]
        else:
            raise SemhilError(f"layer {layer['name']}: op {layer['op']!r} has no nnom layer (supported: {', '.join(SUPPORTED_OPS)})")
        data += its_data
        create += its_create
        names += its_names
    if tail:
        data += _tail(tail)
        create.append("    ADD(lambda_s(&tail_config));")
        names.append(tail[0]["name"])  # the tail's time goes to its first layer
    create.append("    ADD(output_s(&output_config));")
    names += ["output", "packer"]
    n_symbols = elements(code_shape)
    if crop:
        (_, cw, cc), (oh, ow, _) = crop["in_shape"], crop["out_shape"]
        send = [f"    k_crop_u8((const uint8_t *)symbols, {cw}, {cc}, {crop['top']}, {crop['left']}, {oh}, {ow}, cropped);",
                f"    k_pack_bits(cropped, {pack['n_symbols']}, {pack['bits']}, code);"]
        data.append(f"static uint8_t cropped[{pack['n_symbols']}];")
    else:
        send = [f"    k_pack_bits((const uint8_t *)symbols, {pack['n_symbols']}, {pack['bits']}, code);"]
    source = "\n".join([
        f"/* Generated by semhil from bundle {bundle_hash} for NNoM; do not edit. */",
        '#include "model.h"', '#include "nnom.h"', '#include "layers/nnom_lambda.h"', '#include "kernels.h"',
        '#include "th_port.h"', "",
        "nnom_layer_t *lambda_s(const nnom_lambda_config_t *config); /* in nnom_lambda.c, declared in no NNoM header */", "",
        f"static int8_t input_data[{h * w * c}];",
        f"static {'uint8_t' if tail else 'int8_t'} symbols[{n_symbols}];",
        "static uint8_t nnom_arena[MODEL_ARENA_BYTES] __attribute__((aligned(8)));",
        "static uint8_t *side_code; /* where a local predictor writes its side bytes: the caller's code buffer */", "",
        RELU6_RUN, "", *data, "",
        layer_names(names),
        "uint32_t device_half_layer_ticks[MODEL_LAYERS];",
        "static nnom_model_t model;",
        "static uint32_t layer_index;",
        "static uint64_t layer_start;", "",
        "static nnom_status_t layer_done(nnom_model_t *m, nnom_layer_t *layer)",
        "{", "    (void)m, (void)layer;", "    const uint64_t now = th_timer_ticks();",
        "    if (layer_index < MODEL_LAYERS)",
        "        device_half_layer_ticks[layer_index++] += (uint32_t)(now - layer_start);",
        "    layer_start = now;", "    return NN_SUCCESS;", "}", "",
        "/* Creates each layer, hooks it to the one before; any NULL (NNoM out of static memory) stops it. */",
        "#define ADD(created) do { nnom_layer_t *l = (created); if (l == NULL || (last = model.hook(l, last)) == NULL) "
        "return -NN_NO_MEMORY; } while (0)",
        "#define ACTIVATE(act) do { nnom_activation_t *a = (act); if (a == NULL || model.active(a, last) == NULL) "
        "return -NN_NO_MEMORY; } while (0)", "",
        "int device_half_init(void)", "{",
        "    nnom_layer_t *first, *last = NULL;",
        "    nnom_set_static_buf(nnom_arena, sizeof nnom_arena);",
        "    if (new_model(&model) == NULL)", "        return -NN_NO_MEMORY;",
        "    if ((first = input_s(&input_config)) == NULL)", "        return -NN_NO_MEMORY;",
        "    last = first;",
        *create[1:],
        "    const nnom_status_t status = model_compile(&model, first, last);",
        "    if (status != NN_SUCCESS)", "        return -status;",
        "    model_set_callback(&model, layer_done);", "    return 0;", "}", "",
        "uint32_t device_half_arena_bytes(void)", "{", "    return (uint32_t)nnom_mem_stat();", "}", "",
        "static void run_whole(uint8_t *code)", "{",
        "    layer_index = 0;", "    side_code = code;", "    layer_start = th_timer_ticks();",
        "    model_run(&model);",
        *send,
        "    device_half_layer_ticks[MODEL_LAYERS - 1] += (uint32_t)(th_timer_ticks() - layer_start);", "}", "",
        *WHOLE_IMAGE])
    return {"model.h": model_header(graph, bundle_hash, "nnom", arena_bytes, len(names)), "model.c": source}
