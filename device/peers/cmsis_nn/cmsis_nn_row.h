/* The cmsis-nn backend, a peer for measurements: each conv row of the standalone row pipeline
 * (device/kernels/row_pipeline.h) computed by CMSIS-NN's s8 convolution as TensorFlow Lite Micro
 * calls it (arm_convolve_wrapper_s8, per-channel multiplier and shift, input and output offset 0),
 * one output row per call. Max-pooling, the per-pixel float tail and the packer stay the standalone
 * kernels. CMSIS-NN (CMSIS 5.9.0) is compiled from CMSIS_HOME, outside this repository. */
#ifndef SEMHIL_CMSIS_NN_ROW_H
#define SEMHIL_CMSIS_NN_ROW_H

#include <stdint.h>

#include "kernels.h"

typedef struct {
    const int8_t *weight;      /* [out][kh][kw][in] (OHWI) */
    const int32_t *bias;       /* [out]: bias << bias_shift */
    const int32_t *multiplier; /* [out]: 2^(31 - out_shift), or 2^30 when out_shift is 0 */
    const int32_t *shift;      /* [out]: 0, or 1 when out_shift is 0 */
    int32_t buffer_bytes;      /* the CMSIS-NN buffer planned for it (at least cmsis_nn_conv_row_buffer_bytes) */
} cmsis_nn_conv_t;

/* Bytes of CMSIS-NN scratch the conv's row needs (arm_convolve_wrapper_s8_get_buffer_size). */
int32_t cmsis_nn_conv_row_buffer_bytes(const k_conv2d_t *layer);

/* Output row oy of `layer` (an rp_conv_row_t's work): the kernel_h input rows it covers are copied
 * into window (kernel_h * in_w * in_c bytes; zeros for padding rows: with input offset 0 a padding
 * value is 0), then arm_convolve_wrapper_s8 computes the row with buffer (conv->buffer_bytes) as its
 * scratch. */
void cmsis_nn_conv_row(const cmsis_nn_conv_t *conv, const k_conv2d_t *layer, k_rows_t in, int oy, int8_t *out, int8_t *window,
                       int16_t *buffer);

#endif
