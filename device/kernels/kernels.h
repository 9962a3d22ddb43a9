/* The standalone backend's kernels: NNoM's int8 arithmetic, plus the encoder's float32 tail.
 * Tensors are HWC. Float kernels must be compiled with -ffp-contract=off so that they round
 * exactly like the host's simulator (codec_train/simulate.py). */
#ifndef SEMHIL_KERNELS_H
#define SEMHIL_KERNELS_H

#include <stdint.h>

typedef struct {
    uint16_t in_h, in_w, in_c;
    uint16_t out_h, out_w, out_c;
    uint8_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    uint8_t bias_shift, out_shift, relu;
    const int8_t *weight; /* [out][kh][kw][in] */
    const int8_t *bias;   /* [out] */
} k_conv2d_t;

/* uint8 pixels to int8 with 7 fractional bits (pixel / 256). */
void k_pixels_to_s8(const uint8_t *pixels, int8_t *out, uint32_t n);

/* acc = (bias << bias_shift) + round + sum(x * w); out = sat8(acc >> out_shift), then ReLU if set. */
void k_conv2d_s8(const k_conv2d_t *layer, const int8_t *in, int8_t *out);

#define K_GDN_MAX_CHANNELS 64

/* y_i = x_i / sqrt(beta_i + sum_j gamma_ij * x_j^2), x = q * 2^-in_dec. */
void k_gdn_s8_f32(const int8_t *in, float *out, uint32_t pixels, uint32_t channels, int in_dec,
                  const float *beta, const float *gamma);

/* In place: x > 0 ? x : alpha_c * x. */
void k_prelu_f32(float *x, uint32_t pixels, uint32_t channels, const float *alpha);

/* In place: x / sqrt(sum(x^2) / n + eps), the sum taken in order. */
void k_energy_norm_f32(float *x, uint32_t n, float eps);

/* Index of the nearest centre by |x - c|; the first centre wins a tie. */
void k_quantize_f32(const float *x, uint8_t *symbols, uint32_t n, const float *centres, uint32_t n_centres);

/* Centred crop of an HWC uint8 tensor (in_w wide, c channels): rows top.., columns left.., out_h x out_w. */
void k_crop_u8(const uint8_t *in, uint32_t in_w, uint32_t c, uint32_t top, uint32_t left, uint32_t out_h, uint32_t out_w,
               uint8_t *out);

/* bits-bit symbols into a bit stream, most significant bit first, last byte zero-padded. */
void k_pack_bits(const uint8_t *symbols, uint32_t n, uint32_t bits, uint8_t *out);

#endif
