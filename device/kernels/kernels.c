#include "kernels.h"

#include <math.h>
#include <string.h>

static inline int8_t sat8(int32_t v)
{
    return (int8_t)(v > 127 ? 127 : (v < -128 ? -128 : v));
}

void k_pixels_to_s8(const uint8_t *pixels, int8_t *out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = (int8_t)(pixels[i] >> 1);
}

void k_conv2d_s8(const k_conv2d_t *l, const int8_t *in, int8_t *out)
{
    const int32_t round = (int32_t)((1u << l->out_shift) >> 1);
    for (int oy = 0; oy < l->out_h; oy++) {
        for (int ox = 0; ox < l->out_w; ox++) {
            const int y0 = oy * l->stride_h - l->pad_h;
            const int x0 = ox * l->stride_w - l->pad_w;
            for (int oc = 0; oc < l->out_c; oc++) {
                int32_t acc = ((int32_t)l->bias[oc] << l->bias_shift) + round;
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
                int8_t v = sat8(acc >> l->out_shift);
                out[((uint32_t)oy * l->out_w + ox) * l->out_c + oc] = (l->relu && v < 0) ? 0 : v;
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
