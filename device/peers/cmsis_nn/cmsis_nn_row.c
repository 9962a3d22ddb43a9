#include "cmsis_nn_row.h"

#include <string.h>

#include "arm_nnfunctions.h"

static void shapes(const k_conv2d_t *l, cmsis_nn_conv_params *params, cmsis_nn_dims *input, cmsis_nn_dims *filter,
                   cmsis_nn_dims *output)
{
    *params = (cmsis_nn_conv_params){.input_offset = 0, .output_offset = 0, .stride = {l->stride_w, l->stride_h},
                                     .padding = {l->pad_w, 0}, .dilation = {1, 1}, .activation = {l->act_min, l->act_max}};
    *input = (cmsis_nn_dims){1, l->kernel_h, l->in_w, l->in_c};
    *filter = (cmsis_nn_dims){l->out_c, l->kernel_h, l->kernel_w, l->in_c};
    *output = (cmsis_nn_dims){1, 1, l->out_w, l->out_c};
}

int32_t cmsis_nn_conv_row_buffer_bytes(const k_conv2d_t *layer)
{
    cmsis_nn_conv_params params;
    cmsis_nn_dims input, filter, output;
    shapes(layer, &params, &input, &filter, &output);
    return arm_convolve_wrapper_s8_get_buffer_size(&params, &input, &filter, &output);
}

void cmsis_nn_conv_row(const cmsis_nn_conv_t *conv, const k_conv2d_t *layer, k_rows_t in, int oy, int8_t *out, int8_t *window,
                       int16_t *buffer)
{
    const uint32_t row_bytes = (uint32_t)layer->in_w * layer->in_c;
    const int top = oy * layer->stride_h - layer->pad_h;
    for (int ky = 0; ky < layer->kernel_h; ky++) {
        const int y = top + ky;
        if (y < 0 || y >= layer->in_h)
            memset(window + ky * row_bytes, 0, row_bytes);
        else
            memcpy(window + ky * row_bytes, in.base + (uint32_t)y % in.ring * row_bytes, row_bytes);
    }
    cmsis_nn_conv_params params;
    cmsis_nn_dims input, filter, output, bias = {1, 1, 1, layer->out_c};
    shapes(layer, &params, &input, &filter, &output);
    /* CMSIS-NN's parameter structs take non-const pointers; it never writes through them */
    const cmsis_nn_per_channel_quant_params quant = {(int32_t *)conv->multiplier, (int32_t *)conv->shift};
    const cmsis_nn_context ctx = {buffer, conv->buffer_bytes};
    arm_convolve_wrapper_s8(&ctx, &params, &quant, &input, window, &filter, conv->weight, &bias, conv->bias, &output, out);
}
