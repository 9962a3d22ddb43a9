#include "kernels.h"
#include "kernels_fixed.h"

#include <math.h>
#include <string.h>

void k_pixels_to_s8(const uint8_t *pixels, int8_t *out, uint32_t n)
{
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) { /* four at a time: each byte halved, no bit crossing into the next */
        uint32_t v;
        memcpy(&v, pixels + i, 4);
        v = (v >> 1) & 0x7F7F7F7Fu;
        memcpy(out + i, &v, 4);
    }
    for (; i < n; i++)
        out[i] = (int8_t)(pixels[i] >> 1);
}

/* The bytewise signed maximum of two words of four int8. */
static inline uint32_t max4_s8(uint32_t a, uint32_t b)
{
#if defined(__ARM_FEATURE_DSP)
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
#else
    uint32_t r = 0;
    for (int i = 0; i < 32; i += 8) {
        const int8_t x = (int8_t)(a >> i), y = (int8_t)(b >> i);
        r |= (uint32_t)(uint8_t)(x > y ? x : y) << i;
    }
    return r;
#endif
}

void k_maxpool_s8_merge_row(const k_maxpool_t *l, const int8_t *in_row, int8_t *pooled)
{
    const uint32_t channels = l->channels, words = channels % 4 == 0 ? channels / 4 : 0;
    for (int ox = 0; ox < l->out_w; ox++, pooled += channels) {
        const int x0 = ox * l->stride_w - l->pad_w;
        const int first = x0 < 0 ? 0 : x0, end = x0 + l->kernel_w < l->in_w ? x0 + l->kernel_w : l->in_w;
        for (uint32_t c = 0; c < words; c++) { /* four channels at a time */
            uint32_t m;
            memcpy(&m, pooled + 4 * c, 4);
            for (int x = first; x < end; x++) {
                uint32_t v;
                memcpy(&v, in_row + (uint32_t)x * channels + 4 * c, 4);
                m = max4_s8(m, v);
            }
            memcpy(pooled + 4 * c, &m, 4);
        }
        for (int x = first; x < end; x++) {
            const int8_t *px = in_row + (uint32_t)x * channels;
            for (uint32_t c = 4 * words; c < channels; c++)
                pooled[c] = px[c] > pooled[c] ? px[c] : pooled[c];
        }
    }
}

void k_select_channels_s8(const int8_t *in, uint32_t pixels, uint32_t channels, const uint16_t *which, uint32_t count,
                          int8_t *out)
{
    for (uint32_t p = 0; p < pixels; p++, in += channels)
        for (uint32_t c = 0; c < count; c++)
            *out++ = in[which[c]];
}

void k_local_dense_s8_f32(const int8_t *in, uint32_t pixels, uint32_t channels, const uint16_t *which, uint32_t count,
                          int in_dec, const float *weight, const float *bias, uint32_t outputs, uint8_t *out)
{
    const float scale = k_pow2f(-in_dec);
    for (uint32_t j = 0; j < outputs; j++) {
        float acc = bias[j];
        for (uint32_t p = 0; p < pixels; p++)
            for (uint32_t c = 0; c < count; c++)
                acc = acc + *weight++ * ((float)in[p * channels + which[c]] * scale);
        memcpy(out + 4 * j, &acc, 4); /* out need not be aligned */
    }
}

void k_local_dense_rows_s8_f32(const int8_t *in, uint32_t pixels, uint32_t channels, const uint16_t *which, uint32_t count,
                               int in_dec, const float *weight, uint32_t stride, uint32_t outputs, float *acc)
{
    const float scale = k_pow2f(-in_dec);
    for (uint32_t j = 0; j < outputs; j++, weight += stride) {
        const float *w = weight;
        float a = acc[j];
        for (uint32_t p = 0; p < pixels; p++)
            for (uint32_t c = 0; c < count; c++)
                a = a + *w++ * ((float)in[p * channels + which[c]] * scale);
        acc[j] = a;
    }
}

void k_dequantize_s8_f32(const int8_t *in, float *out, uint32_t n, int in_dec)
{
    const float scale = k_pow2f(-in_dec);
    for (uint32_t i = 0; i < n; i++)
        out[i] = (float)in[i] * scale;
}

void k_gdn_s8_f32(const int8_t *in, float *out, uint32_t pixels, uint32_t channels, int in_dec,
                  const float *beta, const float *gamma)
{
    k_gdn(in, out, pixels, channels, k_pow2f(-in_dec), beta, gamma);
}

void k_prelu_f32(float *x, uint32_t pixels, uint32_t channels, const float *alpha)
{
    for (uint32_t p = 0; p < pixels; p++, x += channels)
        for (uint32_t c = 0; c < channels; c++)
            x[c] = x[c] > 0.0f ? x[c] : alpha[c] * x[c];
}

void k_energy_norm_f32(float *x, uint32_t n, float eps)
{
    float acc = 0.0f;
    for (uint32_t i = 0; i < n; i++)
        acc = acc + x[i] * x[i];
    const float scale = sqrtf(acc / (float)n + eps);
    for (uint32_t i = 0; i < n; i++)
        x[i] = x[i] / scale;
}

float k_sum_squares_f32(const float *x, uint32_t n, float acc)
{
    for (uint32_t i = 0; i < n; i++)
        acc = acc + x[i] * x[i];
    return acc;
}

void k_divide_f32(float *x, uint32_t n, float scale)
{
    for (uint32_t i = 0; i < n; i++)
        x[i] = x[i] / scale;
}

void k_quantize_f32(const float *x, uint8_t *symbols, uint32_t n, const float *centres, uint32_t n_centres)
{
    for (uint32_t i = 0; i < n; i++) {
        uint8_t best = 0;
        float best_d = fabsf(x[i] - centres[0]);
        for (uint32_t k = 1; k < n_centres; k++) {
            const float d = fabsf(x[i] - centres[k]);
            if (d < best_d) {
                best_d = d;
                best = (uint8_t)k;
            }
        }
        symbols[i] = best;
    }
}

/* The thresholds search in `depth` steps (a constant in the instances k_quantize_thresholds_f32 picks). */
static inline __attribute__((always_inline)) void quantize_thresholds(const float *x, uint8_t *symbols, uint32_t n,
                                                                      const k_quantizer_t *q, uint32_t depth)
{
    const float *const thresholds = q->thresholds, limit = q->limit; /* locals: the byte stores could alias q */
    const uint8_t *const symbol_at = q->symbol_at;
    for (uint32_t i = 0; i < n; i++) {
        const float v = x[i];
        if (!(fabsf(v) <= limit)) {
            k_quantize_f32(&x[i], &symbols[i], 1, q->centres, q->n_centres);
            continue;
        }
        uint32_t below = 0; /* thresholds <= v */
#pragma GCC unroll 8
        for (uint32_t step = (1u << depth) >> 1; step != 0; step >>= 1)
            if (v >= thresholds[below + step - 1])
                below += step;
        symbols[i] = symbol_at[below];
    }
}

void k_quantize_thresholds_f32(const float *x, uint8_t *symbols, uint32_t n, const k_quantizer_t *q)
{
    switch (q->depth) {
    case 1: quantize_thresholds(x, symbols, n, q, 1); break;
    case 2: quantize_thresholds(x, symbols, n, q, 2); break;
    case 3: quantize_thresholds(x, symbols, n, q, 3); break;
    case 4: quantize_thresholds(x, symbols, n, q, 4); break;
    default: quantize_thresholds(x, symbols, n, q, q->depth); break;
    }
}

void k_crop_u8(const uint8_t *in, uint32_t in_w, uint32_t c, uint32_t top, uint32_t left, uint32_t out_h, uint32_t out_w,
               uint8_t *out)
{
    for (uint32_t y = 0; y < out_h; y++, out += out_w * c)
        memcpy(out, in + ((top + y) * in_w + left) * c, out_w * c);
}

/* A word at a time: the bits not yet written wait in acc (fill of them). The stream is zero from bit at. */
uint32_t k_pack_bits_at(const uint8_t *symbols, uint32_t n, uint32_t bits, uint8_t *out, uint32_t at)
{
    if (bits == 8 && at % 8 == 0) {
        memcpy(out + at / 8, symbols, n);
        return at + 8 * n;
    }
    uint8_t *byte = out + at / 8;
    uint32_t fill = at % 8, acc = fill ? (uint32_t)*byte >> (8 - fill) : 0u;
    const uint32_t mask = (1u << bits) - 1u;
    for (uint32_t i = 0; i < n; i++) {
        acc = acc << bits | (symbols[i] & mask);
        fill += bits;
        while (fill >= 8) {
            fill -= 8;
            *byte++ = (uint8_t)(acc >> fill);
        }
    }
    if (fill)
        *byte = (uint8_t)(acc << (8 - fill));
    return at + n * bits;
}

void k_pack_bits(const uint8_t *symbols, uint32_t n, uint32_t bits, uint8_t *out)
{
    memset(out, 0, (n * bits + 7) / 8);
    k_pack_bits_at(symbols, n, bits, out, 0);
}
