/* The standalone backend's kernels: NNoM's int8 arithmetic, plus the encoder's float32 tail.
 * Tensors are HWC. Float kernels must be compiled with -ffp-contract=off so that they round
 * exactly like the host's simulator (codec_train/simulate.py).
 * Where the compiler offers the DSP extension (__ARM_FEATURE_DSP: Cortex-M4/M7) the conv runs on
 * SMLAD (two 16-bit MACs per instruction); elsewhere in plain C. K_EMULATE_DSP builds the DSP
 * path with C stand-ins for the intrinsics, so that host tests can check it. */
#ifndef SEMHIL_KERNELS_H
#define SEMHIL_KERNELS_H

#include <stdint.h>

/* 2^e as a float32, exactly, for -126 <= e <= 127 (a layer's dec bits are far inside): libm's ldexpf
 * does not link into a MicroPython native module. */
static inline float k_pow2f(int e)
{
    union {
        uint32_t bits;
        float value;
    } u = {(uint32_t)(e + 127) << 23};
    return u.value;
}

typedef struct {
    uint16_t in_h, in_w, in_c;
    uint16_t out_h, out_w, out_c;
    uint8_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int8_t act_min, act_max;    /* the activation as a clamp: none -128..127, ReLU 0..127, ReLU6 0..6 */
    const int8_t *weight;       /* biases and weights, packed, see K_CONV2D_PAIR_BYTES; 4-byte aligned */
    const uint8_t *out_shift;   /* [out] (all equal when the layer is quantized per tensor) */
} k_conv2d_t;

typedef struct {
    uint16_t in_h, in_w, channels, out_h, out_w;
    uint8_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
} k_maxpool_t;

/* uint8 pixels to int8 with 7 fractional bits (pixel / 256). */
void k_pixels_to_s8(const uint8_t *pixels, int8_t *out, uint32_t n);

/* Weights are packed for SMLAD, with the biases, in one stream read front to back: output channels go
 * in pairs (an odd last one with a zero bias and weights). A pair is its two int32 starting sums,
 * little-endian ((bias << bias_shift) + the out shift's rounding, (1 << out_shift) >> 1), then its
 * weights: each channel's row ([kh][kw][in] order) padded with zeros to K4 = kh*kw*in rounded up to 4,
 * and for every group of 4 values, 4 bytes of the first channel then 4 of the second. */
#define K_CONV2D_K4(kernel_h, kernel_w, in_c) ((((kernel_h) * (kernel_w) * (in_c)) + 3u) & ~3u)
#define K_CONV2D_PAIR_BYTES(k4) (8u + 2u * (k4))
#define K_CONV2D_WEIGHT_BYTES(kernel_h, kernel_w, in_c, out_c) \
    (((out_c) + 1u) / 2u * K_CONV2D_PAIR_BYTES(K_CONV2D_K4(kernel_h, kernel_w, in_c)))

/* Channel oc's starting sum. */
static inline int32_t k_conv2d_bias(const k_conv2d_t *l, uint32_t oc)
{
    const uint32_t k4 = K_CONV2D_K4((uint32_t)l->kernel_h, (uint32_t)l->kernel_w, (uint32_t)l->in_c);
    const uint8_t *b = (const uint8_t *)l->weight + (oc / 2u) * K_CONV2D_PAIR_BYTES(k4) + 4u * (oc % 2u);
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

/* Where a conv or pool reads its input rows: input row y (0 <= y < in_h) is at
 * base + (y % ring) * in_w * in_c, a ring of `ring` rows (a whole tensor: ring = in_h);
 * rows outside 0..in_h-1 are padding. */
typedef struct {
    const int8_t *base;
    uint32_t ring;
} k_rows_t;

#define K_CONV2D_MAX_KERNEL_H 16

/* Bytes of scratch a conv needs for `kernel_rows` kernel rows at a time (kernel_h for a row of output,
 * 1 for a row of sums): two im2col columns of 16-bit values, rounded up to 4 values. */
#define K_CONV2D_SCRATCH_BYTES(kernel_rows, kernel_w, in_c) (2u * 2u * (((kernel_rows) * (kernel_w) * (in_c) + 3u) & ~3u))

/* The conv: acc = (bias << bias_shift) + round + sum(x * w); out = clamp(sat8(acc >> out_shift), act_min,
 * act_max). Its kernels are templates in kernels_fixed.h, instantiated per layer by the generated model:
 * K_CONV2D_ROW_FIXED computes output row oy from the input rows it covers; K_CONV2D_SUM_ROW_FIXED sums
 * a conv whose kernel rows never overlap (kernel_h <= stride_h, pad_h = 0; kernel_w * in_c a multiple
 * of 4) one input row at a time: output row oy's sums start at bias + round (begin), take kernel row ky
 * of each input row, then become int8 (end). sums: out_w * out_c int32. */

/* Max-pooling one input row into an output row being pooled (out_w * channels, started at -128 by
 * the caller): padding never counts. */
void k_maxpool_s8_merge_row(const k_maxpool_t *layer, const int8_t *in_row, int8_t *pooled);

#define K_GDN_MAX_CHANNELS 64

/* y_i = x_i / sqrt(beta_i + sum_j gamma_ij * x_j^2), x = q * 2^-in_dec. */
void k_gdn_s8_f32(const int8_t *in, float *out, uint32_t pixels, uint32_t channels, int in_dec,
                  const float *beta, const float *gamma);

/* The listed channels of an HWC int8 tensor, in the listed order. */
void k_select_channels_s8(const int8_t *in, uint32_t pixels, uint32_t channels, const uint16_t *which, uint32_t count,
                          int8_t *out);

/* A float32 dense layer on the listed channels (x = q * 2^-in_dec): out_j = bias_j + sum of
 * weight[j][pixel][c] * x, in pixel-then-channel order; out gets `outputs` float32, little-endian,
 * at any alignment. */
void k_local_dense_s8_f32(const int8_t *in, uint32_t pixels, uint32_t channels, const uint16_t *which, uint32_t count,
                          int in_dec, const float *weight, const float *bias, uint32_t outputs, uint8_t *out);

/* x = q * 2^-in_dec, exact in float32. */
void k_dequantize_s8_f32(const int8_t *in, float *out, uint32_t n, int in_dec);

/* In place: x > 0 ? x : alpha_c * x. */
void k_prelu_f32(float *x, uint32_t pixels, uint32_t channels, const float *alpha);

/* In place: x / sqrt(sum(x^2) / n + eps), the sum taken in order. */
void k_energy_norm_f32(float *x, uint32_t n, float eps);

/* The same in two passes over rows: acc + x0^2 + x1^2 + ... in order, then x / scale in place. */
float k_sum_squares_f32(const float *x, uint32_t n, float acc);
void k_divide_f32(float *x, uint32_t n, float scale);

/* k_local_dense_s8_f32 over a few rows at a time: acc_j += weight[j][pixel][c] * x for the rows'
 * pixels; weight points at output 0's weights of the rows' first pixel, stride floats apart per output. */
void k_local_dense_rows_s8_f32(const int8_t *in, uint32_t pixels, uint32_t channels, const uint16_t *which, uint32_t count,
                               int in_dec, const float *weight, uint32_t stride, uint32_t outputs, float *acc);

/* Index of the nearest centre by |x - c|; the first centre wins a tie. */
void k_quantize_f32(const float *x, uint8_t *symbols, uint32_t n, const float *centres, uint32_t n_centres);

/* The same symbols by thresholds, computed by the host in float32 so that they decide exactly as the
 * search does: symbol = symbol_at[number of thresholds <= x], found in `depth` steps. Where |x| > limit
 * (or x is NaN) two distances could round alike, and the search decides. */
typedef struct {
    const float *centres;
    uint32_t n_centres;
    const float *thresholds;   /* ascending, 2^depth - 1 of them (+inf after the real ones) */
    const uint8_t *symbol_at;  /* [2^depth] */
    uint32_t depth;
    float limit;
} k_quantizer_t;

void k_quantize_thresholds_f32(const float *x, uint8_t *symbols, uint32_t n, const k_quantizer_t *q);

/* Centred crop of an HWC uint8 tensor (in_w wide, c channels): rows top.., columns left.., out_h x out_w. */
void k_crop_u8(const uint8_t *in, uint32_t in_w, uint32_t c, uint32_t top, uint32_t left, uint32_t out_h, uint32_t out_w,
               uint8_t *out);

/* bits-bit symbols into a bit stream, most significant bit first, last byte zero-padded. */
void k_pack_bits(const uint8_t *symbols, uint32_t n, uint32_t bits, uint8_t *out);

/* The same, appended at bit `at` of a stream zeroed beforehand; returns the bit after the last. */
uint32_t k_pack_bits_at(const uint8_t *symbols, uint32_t n, uint32_t bits, uint8_t *out, uint32_t at);

#endif
