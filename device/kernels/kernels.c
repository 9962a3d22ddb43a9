#include "kernels.h"

#include <math.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#define K_DSP 1
#elif defined(K_EMULATE_DSP)
#define K_DSP 1
static inline int32_t __sxtb16(uint32_t v)
{
    return (int32_t)((uint32_t)(uint16_t)(int8_t)v | (uint32_t)(uint16_t)(int8_t)(v >> 16) << 16);
}
static inline int32_t __smlad(int32_t a, int32_t b, int32_t acc)
{
    return acc + (int16_t)a * (int16_t)b + (int16_t)((uint32_t)a >> 16) * (int16_t)((uint32_t)b >> 16);
}
#else
#define K_DSP 0
#endif

static inline int8_t sat8(int32_t v)
{
    return (int8_t)(v > 127 ? 127 : (v < -128 ? -128 : v));
}

void k_pixels_to_s8(const uint8_t *pixels, int8_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = (int8_t)(pixels[i] >> 1);
}

static inline int8_t activation(int32_t acc, uint8_t shift, int8_t lo, int8_t hi)
{
#if defined(__ARM_FEATURE_DSP)
    const int32_t v = __ssat(acc >> shift, 8);
#else
    const int32_t v = sat8(acc >> shift);
#endif
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

static inline int32_t bias_and_round(const k_conv2d_t *l, uint32_t oc)
{
    return ((int32_t)l->bias[oc] << l->bias_shift[oc]) + (int32_t)((1u << l->out_shift[oc]) >> 1);
}

static inline uint32_t k4_of(const k_conv2d_t *l)
{
    return K_CONV2D_K4((uint32_t)l->kernel_h, (uint32_t)l->kernel_w, (uint32_t)l->in_c);
}

/* The kernel_h input rows output row oy covers (NULL for padding rows). */
static inline void window_rows(const k_conv2d_t *l, k_rows_t in, int oy, const int8_t *rows[K_CONV2D_MAX_KERNEL_H])
{
    const int y0 = oy * l->stride_h - l->pad_h;
    for (int ky = 0; ky < l->kernel_h; ky++) {
        const int y = y0 + ky;
        rows[ky] = y < 0 || y >= l->in_h ? 0 : in.base + ((uint32_t)y % in.ring) * l->in_w * l->in_c;
    }
}

#if K_DSP

static inline uint32_t read32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* one LDR: Cortex-M4/M7 load words from any address */
    return v;
}

/* __sxtb16(v ror 8): bytes 1 and 3 sign-extended to halfwords, one instruction with the rotation. */
static inline int32_t sxtb16_ror8(uint32_t v)
{
#if defined(__ARM_FEATURE_DSP)
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
#else
    return __sxtb16((v >> 8) | (v << 24));
#endif
}

/* Scratch layout: for each group of 4 values, 8 halfwords: pixel 0 then pixel 1, each as x0 x2 x1 x3,
 * the order in which __sxtb16 splits 4 packed weights into [w0 w2] and [w1 w3]. */
static inline uint32_t slot(uint32_t k, uint32_t pixel)
{
    static const uint8_t in_group[4] = {0, 2, 1, 3};
    return 8u * (k >> 2) + 4u * pixel + in_group[k & 3u];
}

/* The receptive field of one output pixel (input columns x0.., kernel rows rows[0..n_rows)) as 16-bit
 * column values, zeros where it overhangs or a row is padding (NULL). */
static void im2col(const k_conv2d_t *l, const int8_t *const *rows, int n_rows, int x0, int16_t *col, uint32_t pixel)
{
    const uint32_t row_values = (uint32_t)l->kernel_w * l->in_c;
    const int inside = x0 >= 0 && x0 + l->kernel_w <= l->in_w;
    uint32_t k = 0;
    for (int i = 0; i < n_rows; i++, k += row_values) {
        const int8_t *row = rows[i];
        if (row != 0 && inside) { /* the values are contiguous */
            const int8_t *src = row + (uint32_t)x0 * l->in_c;
            if (row_values % 4 == 0) { /* whole groups: one word in, two out */
                for (uint32_t c = 0; c < row_values; c += 4) {
                    const uint32_t v = read32(src + c);
                    const int32_t even = __sxtb16(v), odd = sxtb16_ror8(v);
                    int16_t *dst = col + slot(k + c, pixel);
                    memcpy(dst, &even, 4);
                    memcpy(dst + 2, &odd, 4);
                }
            } else {
                for (uint32_t c = 0; c < row_values; c++)
                    col[slot(k + c, pixel)] = src[c];
            }
            continue;
        }
        for (int kx = 0; kx < l->kernel_w; kx++) {
            const int x = x0 + kx;
            const int8_t *px = row != 0 && x >= 0 && x < l->in_w ? row + (uint32_t)x * l->in_c : 0;
            for (uint32_t c = 0; c < l->in_c; c++)
                col[slot(k + (uint32_t)kx * l->in_c + c, pixel)] = px ? px[c] : 0;
        }
    }
}

/* acc[2 * i + j] += channel i of the packed pair w . pixel j of col, over `groups` groups of 4. */
static inline void mac_2x2(const int8_t *w, const int16_t *col, uint32_t groups, int32_t acc[4])
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    do {
        const uint32_t wa = read32(w), wb = read32(w + 4);
        const int32_t x0e = (int32_t)read32(col), x0o = (int32_t)read32(col + 2);
        const int32_t x1e = (int32_t)read32(col + 4), x1o = (int32_t)read32(col + 6);
        w += 8;
        col += 8;
        int32_t we = __sxtb16(wa), wo = sxtb16_ror8(wa);
        a00 = __smlad(we, x0e, a00);
        a00 = __smlad(wo, x0o, a00);
        a01 = __smlad(we, x1e, a01);
        a01 = __smlad(wo, x1o, a01);
        we = __sxtb16(wb);
        wo = sxtb16_ror8(wb);
        a10 = __smlad(we, x0e, a10);
        a10 = __smlad(wo, x0o, a10);
        a11 = __smlad(we, x1e, a11);
        a11 = __smlad(wo, x1o, a11);
    } while (--groups);
    acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}

/* The same for pixel 0 alone: acc[0] and acc[2]. */
static inline void mac_2x1(const int8_t *w, const int16_t *col, uint32_t groups, int32_t acc[4])
{
    int32_t a00 = acc[0], a10 = acc[2];
    do {
        const uint32_t wa = read32(w), wb = read32(w + 4);
        const int32_t x0e = (int32_t)read32(col), x0o = (int32_t)read32(col + 2);
        w += 8;
        col += 8;
        a00 = __smlad(__sxtb16(wa), x0e, a00);
        a00 = __smlad(sxtb16_ror8(wa), x0o, a00);
        a10 = __smlad(__sxtb16(wb), x0e, a10);
        a10 = __smlad(sxtb16_ror8(wb), x0o, a10);
    } while (--groups);
    acc[0] = a00, acc[2] = a10;
}

/* Output pixels ox (and ox + 1 when pair) of one row from the columns in scratch: two channels at a
 * time, an odd last channel meeting the zero row of its pair. */
static inline void conv_pixels(const k_conv2d_t *l, const int8_t *w, uint32_t groups, uint32_t k4, const int16_t *scratch,
                               int8_t *out, int pair)
{
    int8_t *const o1 = out + l->out_c;
    for (uint32_t oc = 0; oc < l->out_c; oc += 2, w += 2u * k4) {
        const int second = oc + 1 < l->out_c;
        const int32_t b0 = bias_and_round(l, oc), b1 = second ? bias_and_round(l, oc + 1) : 0;
        int32_t acc[4] = {b0, b0, b1, b1};
        if (pair)
            mac_2x2(w, scratch, groups, acc);
        else
            mac_2x1(w, scratch, groups, acc);
        out[oc] = activation(acc[0], l->out_shift[oc], l->act_min, l->act_max);
        if (second)
            out[oc + 1] = activation(acc[2], l->out_shift[oc + 1], l->act_min, l->act_max);
        if (pair) {
            o1[oc] = activation(acc[1], l->out_shift[oc], l->act_min, l->act_max);
            if (second)
                o1[oc + 1] = activation(acc[3], l->out_shift[oc + 1], l->act_min, l->act_max);
        }
    }
}

/* The same into the int32 sums of a conv summed row by row. */
static inline void sum_pixels(const k_conv2d_t *l, const int8_t *w, uint32_t groups, uint32_t k4, const int16_t *scratch,
                              int32_t *sums, int pair)
{
    int32_t *const s1 = sums + l->out_c;
    for (uint32_t oc = 0; oc < l->out_c; oc += 2, w += 2u * k4) {
        const int second = oc + 1 < l->out_c;
        int32_t acc[4] = {sums[oc], pair ? s1[oc] : 0, second ? sums[oc + 1] : 0, second && pair ? s1[oc + 1] : 0};
        if (pair)
            mac_2x2(w, scratch, groups, acc);
        else
            mac_2x1(w, scratch, groups, acc);
        sums[oc] = acc[0];
        if (second)
            sums[oc + 1] = acc[2];
        if (pair) {
            s1[oc] = acc[1];
            if (second)
                s1[oc + 1] = acc[3];
        }
    }
}

/* Two output pixels at a time, an odd last one alone. */
void k_conv2d_s8_row(const k_conv2d_t *l, k_rows_t in, int oy, int8_t *out, int16_t *scratch)
{
    const uint32_t k4 = k4_of(l);
    const int8_t *rows[K_CONV2D_MAX_KERNEL_H];
    window_rows(l, in, oy, rows);
    memset(scratch, 0, 2u * 2u * k4); /* the padding of the last group stays zero */
    uint32_t ox = 0;
    for (; ox + 1 < l->out_w; ox += 2) {
        im2col(l, rows, l->kernel_h, (int)ox * l->stride_w - l->pad_w, scratch, 0);
        im2col(l, rows, l->kernel_h, (int)(ox + 1) * l->stride_w - l->pad_w, scratch, 1);
        conv_pixels(l, l->weight, k4 / 4u, k4, scratch, out + ox * l->out_c, 1);
    }
    if (ox < l->out_w) {
        im2col(l, rows, l->kernel_h, (int)ox * l->stride_w - l->pad_w, scratch, 0);
        conv_pixels(l, l->weight, k4 / 4u, k4, scratch, out + ox * l->out_c, 0);
    }
}

void k_conv2d_s8_sum_row(const k_conv2d_t *l, const int8_t *in_row, int ky, int32_t *sums, int16_t *scratch)
{
    const uint32_t k4 = k4_of(l), row_values = (uint32_t)l->kernel_w * l->in_c;
    const int8_t *const w_row = l->weight + 2u * (uint32_t)ky * row_values; /* kernel row ky's groups in each pair */
    uint32_t ox = 0;
    for (; ox + 1 < l->out_w; ox += 2) {
        im2col(l, &in_row, 1, (int)ox * l->stride_w - l->pad_w, scratch, 0);
        im2col(l, &in_row, 1, (int)(ox + 1) * l->stride_w - l->pad_w, scratch, 1);
        sum_pixels(l, w_row, row_values / 4u, k4, scratch, sums + ox * l->out_c, 1);
    }
    if (ox < l->out_w) {
        im2col(l, &in_row, 1, (int)ox * l->stride_w - l->pad_w, scratch, 0);
        sum_pixels(l, w_row, row_values / 4u, k4, scratch, sums + ox * l->out_c, 0);
    }
}

#else

/* Weight k of channel oc in the packed layout. */
static inline int32_t packed_weight(const k_conv2d_t *l, uint32_t k4, uint32_t oc, uint32_t k)
{
    return l->weight[(oc / 2u) * 2u * k4 + (k / 4u) * 8u + (oc % 2u) * 4u + k % 4u];
}

/* Kernel row ky's part of output pixel ox, channel oc, from input row `row` (NULL: padding). */
static int32_t row_dot(const k_conv2d_t *l, const int8_t *row, int ky, uint32_t ox, uint32_t oc)
{
    const uint32_t k4 = k4_of(l);
    const int x0 = (int)ox * l->stride_w - l->pad_w;
    int32_t acc = 0;
    uint32_t k = (uint32_t)ky * l->kernel_w * l->in_c;
    for (int kx = 0; row != 0 && kx < l->kernel_w; kx++, k += l->in_c) {
        const int x = x0 + kx;
        if (x < 0 || x >= l->in_w)
            continue;
        const int8_t *px = row + (uint32_t)x * l->in_c;
        for (uint32_t c = 0; c < l->in_c; c++)
            acc += (int32_t)px[c] * packed_weight(l, k4, oc, k + c);
    }
    return acc;
}

void k_conv2d_s8_row(const k_conv2d_t *l, k_rows_t in, int oy, int8_t *out, int16_t *scratch)
{
    (void)scratch;
    const int8_t *rows[K_CONV2D_MAX_KERNEL_H];
    window_rows(l, in, oy, rows);
    for (uint32_t ox = 0; ox < l->out_w; ox++) {
        for (uint32_t oc = 0; oc < l->out_c; oc++) {
            int32_t acc = bias_and_round(l, oc);
            for (int ky = 0; ky < l->kernel_h; ky++)
                acc += row_dot(l, rows[ky], ky, ox, oc);
            out[ox * l->out_c + oc] = activation(acc, l->out_shift[oc], l->act_min, l->act_max);
        }
    }
}

void k_conv2d_s8_sum_row(const k_conv2d_t *l, const int8_t *in_row, int ky, int32_t *sums, int16_t *scratch)
{
    (void)scratch;
    for (uint32_t ox = 0; ox < l->out_w; ox++)
        for (uint32_t oc = 0; oc < l->out_c; oc++)
            sums[ox * l->out_c + oc] += row_dot(l, in_row, ky, ox, oc);
}

#endif

void k_conv2d_s8_sum_begin(const k_conv2d_t *l, int32_t *sums)
{
    for (uint32_t ox = 0; ox < l->out_w; ox++)
        for (uint32_t oc = 0; oc < l->out_c; oc++)
            *sums++ = bias_and_round(l, oc);
}

void k_conv2d_s8_sum_end(const k_conv2d_t *l, const int32_t *sums, int8_t *out)
{
    for (uint32_t ox = 0; ox < l->out_w; ox++)
        for (uint32_t oc = 0; oc < l->out_c; oc++, sums++)
            *out++ = activation(*sums, l->out_shift[oc], l->act_min, l->act_max);
}

void k_maxpool_s8_merge_row(const k_maxpool_t *l, const int8_t *in_row, int8_t *pooled)
{
    for (int ox = 0; ox < l->out_w; ox++, pooled += l->channels) {
        const int x0 = ox * l->stride_w - l->pad_w;
        for (int x = x0 < 0 ? 0 : x0; x < x0 + l->kernel_w && x < l->in_w; x++) {
            const int8_t *px = in_row + (uint32_t)x * l->channels;
            for (uint32_t c = 0; c < l->channels; c++)
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
    const float scale = ldexpf(1.0f, -in_dec);
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
    const float scale = ldexpf(1.0f, -in_dec);
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
    const float scale = ldexpf(1.0f, -in_dec);
    for (uint32_t i = 0; i < n; i++)
        out[i] = (float)in[i] * scale;
}

void k_gdn_s8_f32(const int8_t *in, float *out, uint32_t pixels, uint32_t channels, int in_dec,
                  const float *beta, const float *gamma)
{
    const float scale = ldexpf(1.0f, -in_dec);
    float x[K_GDN_MAX_CHANNELS];
    for (uint32_t p = 0; p < pixels; p++, in += channels, out += channels) {
        for (uint32_t j = 0; j < channels; j++)
            x[j] = (float)in[j] * scale;
        for (uint32_t i = 0; i < channels; i++) {
            float acc = beta[i];
            for (uint32_t j = 0; j < channels; j++)
                acc = acc + gamma[i * channels + j] * (x[j] * x[j]);
            out[i] = x[i] / sqrtf(acc);
        }
    }
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

void k_crop_u8(const uint8_t *in, uint32_t in_w, uint32_t c, uint32_t top, uint32_t left, uint32_t out_h, uint32_t out_w,
               uint8_t *out)
{
    for (uint32_t y = 0; y < out_h; y++, out += out_w * c)
        memcpy(out, in + ((top + y) * in_w + left) * c, out_w * c);
}

uint32_t k_pack_bits_at(const uint8_t *symbols, uint32_t n, uint32_t bits, uint8_t *out, uint32_t at)
{
    if (bits == 8 && at % 8 == 0) {
        memcpy(out + at / 8, symbols, n);
        return at + 8 * n;
    }
    for (uint32_t i = 0; i < n; i++)
        for (int b = (int)bits - 1; b >= 0; b--, at++)
            if ((symbols[i] >> b) & 1u)
                out[at >> 3] |= (uint8_t)(0x80u >> (at & 7));
    return at;
}

void k_pack_bits(const uint8_t *symbols, uint32_t n, uint32_t bits, uint8_t *out)
{
    if (bits == 8) { /* whole bytes: the stream is the symbols themselves */
        memcpy(out, symbols, n);
        return;
    }
    memset(out, 0, (n * bits + 7) / 8);
    uint32_t pos = 0;
    for (uint32_t i = 0; i < n; i++)
        for (int b = (int)bits - 1; b >= 0; b--, pos++)
            if ((symbols[i] >> b) & 1u)
                out[pos >> 3] |= (uint8_t)(0x80u >> (pos & 7));
}
