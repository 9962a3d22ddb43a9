/* The int8 convs and GDN as inline templates. A generated model instantiates them per layer with the
 * shape as constants (K_CONV2D_ROW_FIXED, K_CONV2D_SUM_ROW_FIXED, K_GDN_FIXED), so that the compiler
 * unrolls the gathers and short sums and keeps a per-tensor shift, the clamp and GDN's squares in the
 * instructions and registers; kernels.c's k_gdn_s8_f32 is GDN with the shape read at run time. */
#ifndef SEMHIL_KERNELS_FIXED_H
#define SEMHIL_KERNELS_FIXED_H

#include <math.h>
#include <string.h>

#include "kernels.h"

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

#define K_INLINE static inline __attribute__((always_inline))

/* The shape of a conv as the kernels see it; every field a constant in a per-layer instance. */
typedef struct {
    uint32_t in_h, in_w, in_c, out_w, out_c, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int32_t act_min, act_max;
    int32_t shift; /* the out shift of every channel, or -1: per channel, from layer->out_shift */
} k_conv_shape_t;

/* clamp(sat8(acc >> shift), act_min, act_max); a ReLU is one USAT. */
K_INLINE int8_t k_requantize(int32_t acc, int32_t shift, int32_t lo, int32_t hi)
{
#if defined(__ARM_FEATURE_DSP)
    if (lo == 0 && hi == 127)
        return (int8_t)__usat(acc >> shift, 7);
    int32_t v = __ssat(acc >> shift, 8);
#else
    int32_t v = acc >> shift;
    v = v > 127 ? 127 : (v < -128 ? -128 : v);
#endif
    if (lo > -128)
        v = v < lo ? lo : v;
    if (hi < 127)
        v = v > hi ? hi : v;
    return (int8_t)v;
}

K_INLINE int32_t k_shift_of(const k_conv2d_t *l, k_conv_shape_t s, uint32_t oc)
{
    return s.shift >= 0 ? s.shift : l->out_shift[oc];
}

/* The kernel_h input rows output row oy covers (NULL for padding rows). */
K_INLINE void k_window_rows(k_conv_shape_t s, k_rows_t in, int oy, const int8_t **rows)
{
    const int y0 = oy * (int)s.stride_h - (int)s.pad_h;
    for (uint32_t ky = 0; ky < s.kernel_h; ky++) {
        const int y = y0 + (int)ky;
        rows[ky] = y < 0 || y >= (int)s.in_h ? 0 : in.base + ((uint32_t)y % in.ring) * s.in_w * s.in_c;
    }
}

#if K_DSP

K_INLINE uint32_t k_read32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* one LDR: Cortex-M4/M7 load words from any address */
    return v;
}

/* __sxtb16(v ror 8): bytes 1 and 3 sign-extended to halfwords, one instruction with the rotation. */
K_INLINE int32_t k_sxtb16_ror8(uint32_t v)
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
K_INLINE uint32_t k_slot(uint32_t k, uint32_t pixel)
{
    return 8u * (k >> 2) + 4u * pixel + ((k & 1u) << 1) + ((k & 2u) >> 1);
}

/* The receptive field of one output pixel (input columns x0.., kernel rows rows[0..n_rows)) as 16-bit
 * values, zeros where it overhangs or a row is padding (NULL). */
K_INLINE void k_im2col(k_conv_shape_t s, const int8_t *const *rows, uint32_t n_rows, int x0, int16_t *col, uint32_t pixel)
{
    const uint32_t row_values = s.kernel_w * s.in_c;
    const int inside = x0 >= 0 && x0 + (int)s.kernel_w <= (int)s.in_w;
    uint32_t k = 0;
#pragma GCC unroll 16
    for (uint32_t i = 0; i < n_rows; i++, k += row_values) {
        const int8_t *row = rows[i];
        if (row != 0 && inside) { /* the values are contiguous */
            const int8_t *src = row + (uint32_t)x0 * s.in_c;
            if (row_values % 4 == 0) { /* whole groups: one word in, two out */
#pragma GCC unroll 16
                for (uint32_t c = 0; c < row_values; c += 4) {
                    const uint32_t v = k_read32(src + c);
                    const int32_t even = __sxtb16(v), odd = k_sxtb16_ror8(v);
                    int16_t *dst = col + k_slot(k + c, pixel);
                    memcpy(dst, &even, 4);
                    memcpy(dst + 2, &odd, 4);
                }
            } else {
#pragma GCC unroll 32
                for (uint32_t c = 0; c < row_values; c++)
                    col[k_slot(k + c, pixel)] = src[c];
            }
            continue;
        }
        for (uint32_t kx = 0; kx < s.kernel_w; kx++) {
            const int x = x0 + (int)kx;
            const int8_t *px = row != 0 && x >= 0 && x < (int)s.in_w ? row + (uint32_t)x * s.in_c : 0;
            for (uint32_t c = 0; c < s.in_c; c++)
                col[k_slot(k + kx * s.in_c + c, pixel)] = px ? px[c] : 0;
        }
    }
}

/* The receptive fields of two neighbouring pixels of a one-channel conv with stride 1 (x0 and x0 + 1 both
 * inside): the kernel_w + 1 values of each row serve both. */
K_INLINE void k_im2col_pair_c1(k_conv_shape_t s, const int8_t *const *rows, int x0, int16_t *col)
{
#pragma GCC unroll 16
    for (uint32_t i = 0; i < s.kernel_h; i++) {
        const int8_t *row = rows[i];
        int16_t v[K_CONV2D_MAX_KERNEL_H + 1];
#pragma GCC unroll 17
        for (uint32_t kx = 0; kx <= s.kernel_w; kx++)
            v[kx] = row != 0 ? row[x0 + (int)kx] : 0;
#pragma GCC unroll 16
        for (uint32_t kx = 0; kx < s.kernel_w; kx++) {
            col[k_slot(i * s.kernel_w + kx, 0)] = v[kx];
            col[k_slot(i * s.kernel_w + kx, 1)] = v[kx + 1];
        }
    }
}

/* acc[2 * i + j] += channel i of the packed pair at *w . pixel j of col, over `groups` groups of 4; *w
 * moves past them. one_in_last: the last group holds one value (k % 4 == 1), so its odd halves are zero
 * and skipped. On Cortex-M4/M7 a group is 15 instructions for its 16 MACs: GCC spills registers on this
 * loop when it is unrolled, so it is written in assembly (w and col 4-byte aligned, for LDRD). */
K_INLINE void k_mac_2x2(const int8_t **w_at, const int16_t *col, uint32_t groups, int one_in_last, int32_t acc[4])
{
    const int8_t *w = *w_at;
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    const uint32_t full = one_in_last ? groups - 1 : groups;
#pragma GCC unroll 4
    for (uint32_t g = 0; g < full; g++) {
#if defined(__ARM_FEATURE_DSP)
        uint32_t wa, wb, xe, xo, we, t;
        __asm__("ldrd   %[wa], %[wb], [%[w]], #8\n\t"
                "ldrd   %[xe], %[xo], [%[col]], #8\n\t"
                "sxtb16 %[we], %[wa]\n\t"
                "sxtb16 %[wa], %[wa], ror #8\n\t"
                "smlad  %[a00], %[we], %[xe], %[a00]\n\t"
                "smlad  %[a00], %[wa], %[xo], %[a00]\n\t"
                "sxtb16 %[t], %[wb]\n\t"
                "sxtb16 %[wb], %[wb], ror #8\n\t"
                "smlad  %[a10], %[t], %[xe], %[a10]\n\t"
                "smlad  %[a10], %[wb], %[xo], %[a10]\n\t"
                "ldrd   %[xe], %[xo], [%[col]], #8\n\t"
                "smlad  %[a01], %[we], %[xe], %[a01]\n\t"
                "smlad  %[a01], %[wa], %[xo], %[a01]\n\t"
                "smlad  %[a11], %[t], %[xe], %[a11]\n\t"
                "smlad  %[a11], %[wb], %[xo], %[a11]"
                : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [w] "+r"(w), [col] "+r"(col),
                  [wa] "=&r"(wa), [wb] "=&r"(wb), [xe] "=&r"(xe), [xo] "=&r"(xo), [we] "=&r"(we), [t] "=&r"(t)
                : "m"(*(const uint32_t(*)[2])w), "m"(*(const uint32_t(*)[4])col));
#else
        const uint32_t wa = k_read32(w), wb = k_read32(w + 4);
        const int32_t wa_e = __sxtb16(wa), wa_o = k_sxtb16_ror8(wa), wb_e = __sxtb16(wb), wb_o = k_sxtb16_ror8(wb);
        int32_t xe = (int32_t)k_read32(col), xo = (int32_t)k_read32(col + 2);
        a00 = __smlad(wa_e, xe, a00);
        a00 = __smlad(wa_o, xo, a00);
        a10 = __smlad(wb_e, xe, a10);
        a10 = __smlad(wb_o, xo, a10);
        xe = (int32_t)k_read32(col + 4);
        xo = (int32_t)k_read32(col + 6);
        a01 = __smlad(wa_e, xe, a01);
        a01 = __smlad(wa_o, xo, a01);
        a11 = __smlad(wb_e, xe, a11);
        a11 = __smlad(wb_o, xo, a11);
        w += 8;
        col += 8;
#endif
    }
    if (one_in_last) { /* value 0 of the group only: the even halves */
        const int32_t wa_e = __sxtb16(k_read32(w)), wb_e = __sxtb16(k_read32(w + 4));
        const int32_t x0 = (int32_t)k_read32(col), x1 = (int32_t)k_read32(col + 4);
        a00 = __smlad(wa_e, x0, a00);
        a10 = __smlad(wb_e, x0, a10);
        a01 = __smlad(wa_e, x1, a01);
        a11 = __smlad(wb_e, x1, a11);
        w += 8;
    }
    acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
    *w_at = w;
}

/* The same for pixel 0 alone: acc[0] and acc[2]. */
K_INLINE void k_mac_2x1(const int8_t *w, const int16_t *col, uint32_t groups, int32_t acc[4])
{
    int32_t a00 = acc[0], a10 = acc[2];
#pragma GCC unroll 4
    for (uint32_t g = 0; g < groups; g++) {
#if defined(__ARM_FEATURE_DSP)
        uint32_t wa, wb, xe, xo, t;
        __asm__("ldrd   %[wa], %[wb], [%[w]], #8\n\t"
                "ldrd   %[xe], %[xo], [%[col]], #16\n\t"
                "sxtb16 %[t], %[wa]\n\t"
                "sxtb16 %[wa], %[wa], ror #8\n\t"
                "smlad  %[a00], %[t], %[xe], %[a00]\n\t"
                "smlad  %[a00], %[wa], %[xo], %[a00]\n\t"
                "sxtb16 %[t], %[wb]\n\t"
                "sxtb16 %[wb], %[wb], ror #8\n\t"
                "smlad  %[a10], %[t], %[xe], %[a10]\n\t"
                "smlad  %[a10], %[wb], %[xo], %[a10]"
                : [a00] "+r"(a00), [a10] "+r"(a10), [w] "+r"(w), [col] "+r"(col), [wa] "=&r"(wa), [wb] "=&r"(wb),
                  [xe] "=&r"(xe), [xo] "=&r"(xo), [t] "=&r"(t)
                : "m"(*(const uint32_t(*)[2])w), "m"(*(const uint32_t(*)[2])col));
#else
        const uint32_t wa = k_read32(w), wb = k_read32(w + 4);
        const int32_t xe = (int32_t)k_read32(col), xo = (int32_t)k_read32(col + 2);
        a00 = __smlad(__sxtb16(wa), xe, a00);
        a00 = __smlad(k_sxtb16_ror8(wa), xo, a00);
        a10 = __smlad(__sxtb16(wb), xe, a10);
        a10 = __smlad(k_sxtb16_ror8(wb), xo, a10);
        w += 8;
        col += 8;
#endif
    }
    acc[0] = a00, acc[2] = a10;
}

/* Output pixels ox (and ox + 1 when pair) of one row from the columns in scratch: two channels at a
 * time, an odd last channel meeting the zero row of its pair. */
K_INLINE void k_conv_pixels(const k_conv2d_t *l, k_conv_shape_t s, uint32_t groups, const int16_t *col, int8_t *out, int pair)
{
    const int8_t *w = l->weight; /* the pairs' biases and weights, read front to back */
    const int one_in_last = (s.kernel_h * s.kernel_w * s.in_c) % 4 == 1;
    for (uint32_t oc = 0; oc < s.out_c; oc += 2) {
        const int second = oc + 1 < s.out_c;
        int32_t b0, b1;
        memcpy(&b0, __builtin_assume_aligned(w, 4), 4);
        memcpy(&b1, __builtin_assume_aligned(w + 4, 4), 4);
        w += 8;
        int32_t acc[4] = {b0, b0, b1, b1};
        if (pair) {
            k_mac_2x2(&w, col, groups, one_in_last, acc);
        } else {
            k_mac_2x1(w, col, groups, acc);
            w += 8u * groups;
        }
        out[oc] = k_requantize(acc[0], k_shift_of(l, s, oc), s.act_min, s.act_max);
        if (pair)
            out[s.out_c + oc] = k_requantize(acc[1], k_shift_of(l, s, oc), s.act_min, s.act_max);
        if (second) {
            out[oc + 1] = k_requantize(acc[2], k_shift_of(l, s, oc + 1), s.act_min, s.act_max);
            if (pair)
                out[s.out_c + oc + 1] = k_requantize(acc[3], k_shift_of(l, s, oc + 1), s.act_min, s.act_max);
        }
    }
}

/* The same into the int32 sums of a conv summed row by row; w: kernel row ky's groups of the first pair,
 * pair_bytes apart. */
K_INLINE void k_sum_pixels(k_conv_shape_t s, const int8_t *w, uint32_t groups, uint32_t pair_bytes, const int16_t *col,
                           int32_t *sums, int pair)
{
    int32_t *const s1 = sums + s.out_c;
    for (uint32_t oc = 0; oc < s.out_c; oc += 2, w += pair_bytes) {
        const int second = oc + 1 < s.out_c;
        int32_t acc[4] = {sums[oc], pair ? s1[oc] : 0, second ? sums[oc + 1] : 0, second && pair ? s1[oc + 1] : 0};
        if (pair) {
            const int8_t *w_pair = w;
            k_mac_2x2(&w_pair, col, groups, 0, acc);
        } else {
            k_mac_2x1(w, col, groups, acc);
        }
        sums[oc] = acc[0];
        if (pair)
            s1[oc] = acc[1];
        if (second) {
            sums[oc + 1] = acc[2];
            if (pair)
                s1[oc + 1] = acc[3];
        }
    }
}

/* Output row oy, two output pixels at a time, an odd last one alone. */
K_INLINE void k_conv_row(const k_conv2d_t *l, k_conv_shape_t s, k_rows_t in, int oy, int8_t *out, int16_t *scratch)
{
    const uint32_t k = s.kernel_h * s.kernel_w * s.in_c, k4 = K_CONV2D_K4(s.kernel_h, s.kernel_w, s.in_c);
    const int8_t *rows[K_CONV2D_MAX_KERNEL_H];
    k_window_rows(s, in, oy, rows);
    for (uint32_t i = k; i < k4; i++) /* the padding of the last group stays zero */
        scratch[k_slot(i, 0)] = scratch[k_slot(i, 1)] = 0;
    uint32_t ox = 0;
    for (; ox + 1 < s.out_w; ox += 2) {
        const int x0 = (int)(ox * s.stride_w) - (int)s.pad_w;
        if (s.in_c == 1 && s.stride_w == 1 && s.kernel_w < K_CONV2D_MAX_KERNEL_H && x0 >= 0 && x0 + (int)s.kernel_w < (int)s.in_w) {
            k_im2col_pair_c1(s, rows, x0, scratch);
        } else {
            k_im2col(s, rows, s.kernel_h, x0, scratch, 0);
            k_im2col(s, rows, s.kernel_h, x0 + (int)s.stride_w, scratch, 1);
        }
        k_conv_pixels(l, s, k4 / 4u, scratch, out + ox * s.out_c, 1);
    }
    if (ox < s.out_w) {
        k_im2col(s, rows, s.kernel_h, (int)(ox * s.stride_w) - (int)s.pad_w, scratch, 0);
        k_conv_pixels(l, s, k4 / 4u, scratch, out + ox * s.out_c, 0);
    }
}

K_INLINE void k_sum_row(const k_conv2d_t *l, k_conv_shape_t s, const int8_t *in_row, int ky, int32_t *sums, int16_t *scratch)
{
    const uint32_t k4 = K_CONV2D_K4(s.kernel_h, s.kernel_w, s.in_c), row_values = s.kernel_w * s.in_c;
    const int8_t *const w_row = l->weight + 8u + 2u * (uint32_t)ky * row_values; /* kernel row ky's groups in the first pair */
    uint32_t ox = 0;
    for (; ox + 1 < s.out_w; ox += 2) {
        k_im2col(s, &in_row, 1, (int)(ox * s.stride_w) - (int)s.pad_w, scratch, 0);
        k_im2col(s, &in_row, 1, (int)((ox + 1) * s.stride_w) - (int)s.pad_w, scratch, 1);
        k_sum_pixels(s, w_row, row_values / 4u, K_CONV2D_PAIR_BYTES(k4), scratch, sums + ox * s.out_c, 1);
    }
    if (ox < s.out_w) {
        k_im2col(s, &in_row, 1, (int)(ox * s.stride_w) - (int)s.pad_w, scratch, 0);
        k_sum_pixels(s, w_row, row_values / 4u, K_CONV2D_PAIR_BYTES(k4), scratch, sums + ox * s.out_c, 0);
    }
}

#else

/* Weight k of channel oc in the packed layout. */
K_INLINE int32_t k_packed_weight(const k_conv2d_t *l, uint32_t k4, uint32_t oc, uint32_t k)
{
    return l->weight[(oc / 2u) * K_CONV2D_PAIR_BYTES(k4) + 8u + (k / 4u) * 8u + (oc % 2u) * 4u + k % 4u];
}

/* Kernel row ky's part of output pixel ox, channel oc, from input row `row` (NULL: padding). */
K_INLINE int32_t k_row_dot(const k_conv2d_t *l, k_conv_shape_t s, const int8_t *row, uint32_t ky, uint32_t ox, uint32_t oc)
{
    const uint32_t k4 = K_CONV2D_K4(s.kernel_h, s.kernel_w, s.in_c);
    const int x0 = (int)(ox * s.stride_w) - (int)s.pad_w;
    int32_t acc = 0;
    uint32_t k = ky * s.kernel_w * s.in_c;
    for (uint32_t kx = 0; row != 0 && kx < s.kernel_w; kx++, k += s.in_c) {
        const int x = x0 + (int)kx;
        if (x < 0 || x >= (int)s.in_w)
            continue;
        const int8_t *px = row + (uint32_t)x * s.in_c;
        for (uint32_t c = 0; c < s.in_c; c++)
            acc += (int32_t)px[c] * k_packed_weight(l, k4, oc, k + c);
    }
    return acc;
}

K_INLINE void k_conv_row(const k_conv2d_t *l, k_conv_shape_t s, k_rows_t in, int oy, int8_t *out, int16_t *scratch)
{
    (void)scratch;
    const int8_t *rows[K_CONV2D_MAX_KERNEL_H];
    k_window_rows(s, in, oy, rows);
    for (uint32_t ox = 0; ox < s.out_w; ox++) {
        for (uint32_t oc = 0; oc < s.out_c; oc++) {
            int32_t acc = k_conv2d_bias(l, oc);
            for (uint32_t ky = 0; ky < s.kernel_h; ky++)
                acc += k_row_dot(l, s, rows[ky], ky, ox, oc);
            out[ox * s.out_c + oc] = k_requantize(acc, k_shift_of(l, s, oc), s.act_min, s.act_max);
        }
    }
}

K_INLINE void k_sum_row(const k_conv2d_t *l, k_conv_shape_t s, const int8_t *in_row, int ky, int32_t *sums, int16_t *scratch)
{
    (void)scratch;
    for (uint32_t ox = 0; ox < s.out_w; ox++)
        for (uint32_t oc = 0; oc < s.out_c; oc++)
            sums[ox * s.out_c + oc] += k_row_dot(l, s, in_row, (uint32_t)ky, ox, oc);
}

#endif

/* Kernel row ky of a conv summed row by row (see kernels.h): the sums start at the biases with kernel
 * row 0 and become output row `out` after the last. */
K_INLINE void k_sum_step(const k_conv2d_t *l, k_conv_shape_t s, const int8_t *in_row, int ky, int32_t *sums, int8_t *out,
                         int16_t *scratch)
{
    if (ky == 0)
        for (uint32_t ox = 0; ox < s.out_w; ox++)
            for (uint32_t oc = 0; oc < s.out_c; oc++)
                sums[ox * s.out_c + oc] = k_conv2d_bias(l, oc);
    k_sum_row(l, s, in_row, ky, sums, scratch);
    if (ky + 1u == s.kernel_h)
        for (uint32_t ox = 0; ox < s.out_w; ox++)
            for (uint32_t oc = 0; oc < s.out_c; oc++, sums++)
                *out++ = k_requantize(*sums, k_shift_of(l, s, oc), s.act_min, s.act_max);
}

/* GDN, see k_gdn_s8_f32; scale = 2^-in_dec. */
K_INLINE void k_gdn(const int8_t *in, float *out, uint32_t pixels, uint32_t channels, float scale, const float *beta,
                    const float *gamma)
{
    float x[K_GDN_MAX_CHANNELS], x2[K_GDN_MAX_CHANNELS];
    for (uint32_t p = 0; p < pixels; p++, in += channels, out += channels) {
#pragma GCC unroll 16
        for (uint32_t j = 0; j < channels; j++) {
            x[j] = (float)in[j] * scale;
            x2[j] = x[j] * x[j];
        }
        const float *g = gamma;
        for (uint32_t i = 0; i < channels; i++) {
            float acc = beta[i];
#pragma GCC unroll 16
            for (uint32_t j = 0; j < channels; j++)
                acc = acc + *g++ * x2[j];
            out[i] = x[i] / sqrtf(acc);
        }
    }
}

/* A per-layer instance: `name`(layer, in, oy, out, scratch) with the shape as constants. */
#define K_CONV2D_ROW_FIXED(name, ...)                                                               \
    static void name(const k_conv2d_t *layer, k_rows_t in, int oy, int8_t *out, int16_t *scratch)   \
    {                                                                                               \
        const k_conv_shape_t shape = {__VA_ARGS__};                                                 \
        k_conv_row(layer, shape, in, oy, out, scratch);                                             \
    }

#define K_CONV2D_SUM_ROW_FIXED(name, ...)                                                                          \
    static void name(const k_conv2d_t *layer, const int8_t *in_row, int ky, int32_t *sums, int8_t *out,            \
                     int16_t *scratch)                                                                             \
    {                                                                                                              \
        const k_conv_shape_t shape = {__VA_ARGS__};                                                                \
        k_sum_step(layer, shape, in_row, ky, sums, out, scratch);                                                  \
    }

#define K_GDN_FIXED(name, channels, in_dec)                                                                  \
    static void name(const int8_t *in, float *out, uint32_t pixels, const float *beta, const float *gamma)  \
    {                                                                                                        \
        k_gdn(in, out, pixels, channels, k_pow2f(-(in_dec)), beta, gamma);                                \
    }

#endif
