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
    const int8_t v = sat8(acc >> shift);
    return v < lo ? lo : (v > hi ? hi : v);
}

static inline int32_t bias_and_round(const k_conv2d_t *l, int oc)
{
    return ((int32_t)l->bias[oc] << l->bias_shift[oc]) + (int32_t)((1u << l->out_shift[oc]) >> 1);
}

#if K_DSP

static inline uint32_t read32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* one LDR: Cortex-M4/M7 load words from any address */
    return v;
}

static inline uint32_t ror8(uint32_t v)
{
    return (v >> 8) | (v << 24);
}

/* Position of im2col element k: in each group of 4 the values sit as x0 x2 x1 x3, the order in
 * which __sxtb16 splits 4 packed weights into [w0 w2] and [w1 w3]. */
static inline uint32_t slot(uint32_t k)
{
    static const uint8_t in_group[4] = {0, 2, 1, 3};
    return (k & ~3u) + in_group[k & 3u];
}

/* The receptive field of output pixel (oy, ox) as 16-bit values, zeros where it overhangs. */
static void im2col(const k_conv2d_t *l, const int8_t *in, int oy, int ox, int16_t *col)
{
    const int y0 = oy * l->stride_h - l->pad_h, x0 = ox * l->stride_w - l->pad_w;
    uint32_t k = 0;
    for (int ky = 0; ky < l->kernel_h; ky++) {
        for (int kx = 0; kx < l->kernel_w; kx++, k += l->in_c) {
            const int y = y0 + ky, x = x0 + kx;
            const int inside = y >= 0 && y < l->in_h && x >= 0 && x < l->in_w;
            const int8_t *px = inside ? in + ((uint32_t)y * l->in_w + (uint32_t)x) * l->in_c : in;
            if (l->in_c % 4 == 0) { /* whole groups: one word in, two out */
                for (uint32_t c = 0; c < l->in_c; c += 4) {
                    const uint32_t v = inside ? read32(px + c) : 0;
                    const int32_t even = __sxtb16(v), odd = __sxtb16(ror8(v));
                    memcpy(col + k + c, &even, 4);
                    memcpy(col + k + c + 2, &odd, 4);
                }
            } else {
                for (uint32_t c = 0; c < l->in_c; c++)
                    col[slot(k + c)] = inside ? px[c] : 0;
            }
        }
    }
}

/* acc[2 * i + j] += weights of channel i (w0, w1) . column j (c0, c1), K values each. */
static void mac_2x2(const int8_t *w0, const int8_t *w1, const int16_t *c0, const int16_t *c1, uint32_t K, int32_t acc[4])
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    uint32_t k = 0;
    for (; k + 4 <= K; k += 4) {
        const uint32_t wa = read32(w0 + k), wb = read32(w1 + k);
        const int32_t w0e = __sxtb16(wa), w0o = __sxtb16(ror8(wa));
        const int32_t w1e = __sxtb16(wb), w1o = __sxtb16(ror8(wb));
        const int32_t x0e = (int32_t)read32(c0 + k), x0o = (int32_t)read32(c0 + k + 2);
        const int32_t x1e = (int32_t)read32(c1 + k), x1o = (int32_t)read32(c1 + k + 2);
        a00 = __smlad(w0e, x0e, a00);
        a00 = __smlad(w0o, x0o, a00);
        a01 = __smlad(w0e, x1e, a01);
        a01 = __smlad(w0o, x1o, a01);
        a10 = __smlad(w1e, x0e, a10);
        a10 = __smlad(w1o, x0o, a10);
        a11 = __smlad(w1e, x1e, a11);
        a11 = __smlad(w1o, x1o, a11);
    }
    for (; k < K; k++) {
        const int32_t x0 = c0[slot(k)], x1 = c1[slot(k)];
        a00 += w0[k] * x0;
        a01 += w0[k] * x1;
        a10 += w1[k] * x0;
        a11 += w1[k] * x1;
    }
    acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}

/* Two output pixels by two channels at a time; an odd last pixel or channel is computed twice
 * over and written once. */
void k_conv2d_s8(const k_conv2d_t *l, const int8_t *in, int8_t *out, int16_t *scratch)
{
    const uint32_t K = (uint32_t)l->kernel_h * l->kernel_w * l->in_c, pixels = (uint32_t)l->out_h * l->out_w;
    int16_t *const col0 = scratch, *const col1 = scratch + ((K + 3u) & ~3u);
    for (uint32_t p = 0; p < pixels; p += 2) {
        const int pair = p + 1 < pixels;
        im2col(l, in, (int)(p / l->out_w), (int)(p % l->out_w), col0);
        if (pair)
            im2col(l, in, (int)((p + 1) / l->out_w), (int)((p + 1) % l->out_w), col1);
        int8_t *const o0 = out + p * l->out_c, *const o1 = o0 + l->out_c;
        for (uint32_t oc = 0; oc < l->out_c; oc += 2) {
            const uint32_t oc1 = oc + 1 < l->out_c ? oc + 1 : oc;
            int32_t acc[4] = {bias_and_round(l, oc), bias_and_round(l, oc), bias_and_round(l, oc1), bias_and_round(l, oc1)};
            mac_2x2(l->weight + oc * K, l->weight + oc1 * K, col0, pair ? col1 : col0, K, acc);
            o0[oc] = activation(acc[0], l->out_shift[oc], l->act_min, l->act_max);
            o0[oc1] = activation(acc[2], l->out_shift[oc1], l->act_min, l->act_max);
            if (pair) {
                o1[oc] = activation(acc[1], l->out_shift[oc], l->act_min, l->act_max);
                o1[oc1] = activation(acc[3], l->out_shift[oc1], l->act_min, l->act_max);
            }
        }
    }
}

#else

void k_conv2d_s8(const k_conv2d_t *l, const int8_t *in, int8_t *out, int16_t *scratch)
{
    (void)scratch;
    for (int oy = 0; oy < l->out_h; oy++) {
        for (int ox = 0; ox < l->out_w; ox++) {
            const int y0 = oy * l->stride_h - l->pad_h;
            const int x0 = ox * l->stride_w - l->pad_w;
            for (int oc = 0; oc < l->out_c; oc++) {
                int32_t acc = bias_and_round(l, oc);
                const int8_t *w = l->weight + (uint32_t)oc * l->kernel_h * l->kernel_w * l->in_c;
                for (int ky = 0; ky < l->kernel_h; ky++) {
                    const int y = y0 + ky;
                    if (y < 0 || y >= l->in_h) {
                        w += l->kernel_w * l->in_c;
                        continue;
                    }
                    for (int kx = 0; kx < l->kernel_w; kx++, w += l->in_c) {
                        const int x = x0 + kx;
                        if (x < 0 || x >= l->in_w)
                            continue;
                        const int8_t *px = in + ((uint32_t)y * l->in_w + x) * l->in_c;
                        for (int c = 0; c < l->in_c; c++)
                            acc += (int32_t)px[c] * w[c];
                    }
                }
                out[((uint32_t)oy * l->out_w + ox) * l->out_c + oc] = activation(acc, l->out_shift[oc], l->act_min, l->act_max);
            }
        }
    }
}

#endif

void k_maxpool_s8(const k_maxpool_t *l, const int8_t *in, int8_t *out)
{
    for (int oy = 0; oy < l->out_h; oy++) {
        for (int ox = 0; ox < l->out_w; ox++, out += l->channels) {
            const int y0 = oy * l->stride_h - l->pad_h, x0 = ox * l->stride_w - l->pad_w;
            for (uint32_t c = 0; c < l->channels; c++)
                out[c] = -128;
            for (int y = y0 < 0 ? 0 : y0; y < y0 + l->kernel_h && y < l->in_h; y++) {
                for (int x = x0 < 0 ? 0 : x0; x < x0 + l->kernel_w && x < l->in_w; x++) {
                    const int8_t *px = in + ((uint32_t)y * l->in_w + (uint32_t)x) * l->channels;
                    for (uint32_t c = 0; c < l->channels; c++)
                        out[c] = px[c] > out[c] ? px[c] : out[c];
                }
            }
        }
    }
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

void k_pack_bits(const uint8_t *symbols, uint32_t n, uint32_t bits, uint8_t *out)
{
    memset(out, 0, (n * bits + 7) / 8);
    uint32_t pos = 0;
    for (uint32_t i = 0; i < n; i++)
        for (int b = (int)bits - 1; b >= 0; b--, pos++)
            if ((symbols[i] >> b) & 1u)
                out[pos >> 3] |= (uint8_t)(0x80u >> (pos & 7));
}
