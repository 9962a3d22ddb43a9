/* The standalone backend's row pipeline: the image flows through the device half one row at a time,
 * and each spatial layer keeps only the rows it still needs, never a whole tensor:
 *   RP_CONV_WINDOW  a conv keeping its last kernel_h input rows (a ring);
 *   RP_CONV_SUMS    a conv whose kernel rows never overlap (kernel_h <= stride_h, no padding in
 *                   height), keeping one input row and the int32 sums of the output row it feeds;
 *   RP_MAXPOOL      a max-pool keeping one input row and the output rows being pooled (a ring).
 * Each output row is written where the next stage takes its input, or handed to the model's tail
 * (the per-pixel layers, generated with the model). The arithmetic is the whole-tensor one: integer
 * sums and maxima do not depend on the order rows arrive in. */
#ifndef SEMHIL_ROW_PIPELINE_H
#define SEMHIL_ROW_PIPELINE_H

#include <stdint.h>

#include "kernels.h"
#include "th_port.h"

enum { RP_CONV_WINDOW, RP_CONV_SUMS, RP_MAXPOOL };

/* Computes output row oy of an RP_CONV_WINDOW conv (an instance of K_CONV2D_ROW_FIXED, or a peer's). */
typedef void (*rp_conv_row_t)(const k_conv2d_t *layer, k_rows_t in, int oy, int8_t *out, int16_t *scratch);
/* Adds kernel row ky of an RP_CONV_SUMS conv to its output row's sums, started with kernel row 0 and written
 * to out as int8 after the last (an instance of K_CONV2D_SUM_ROW_FIXED). */
typedef void (*rp_conv_sum_row_t)(const k_conv2d_t *layer, const int8_t *in_row, int ky, int32_t *sums, int8_t *out,
                                  int16_t *scratch);

typedef struct {
    uint8_t kind;
    uint8_t layer;            /* its index in the model's layer ticks */
    const k_conv2d_t *conv;   /* RP_CONV_* */
    rp_conv_row_t conv_row;   /* RP_CONV_WINDOW */
    rp_conv_sum_row_t conv_sum_row; /* RP_CONV_SUMS */
    const k_maxpool_t *pool;  /* RP_MAXPOOL */
    int8_t *rows;             /* RP_CONV_WINDOW: `ring` input rows; RP_MAXPOOL: `ring` output rows */
    int8_t *in_row;           /* RP_CONV_SUMS, RP_MAXPOOL: the input row */
    int32_t *sums;            /* RP_CONV_SUMS: out_w * out_c */
    uint16_t ring;
    uint16_t rows_in;         /* input rows received in this image */
    uint16_t next_out;        /* RP_CONV_WINDOW: the next output row to compute */
} rp_stage_t;

typedef struct {
    rp_stage_t *stages;
    uint32_t n_stages;
    int8_t *tail_in;                                  /* where the last stage writes its output row */
    void (*tail)(const int8_t *row, uint32_t y);      /* takes output row y of the last stage */
    int16_t *scratch;                                 /* the convs' im2col columns */
    uint32_t *ticks;                                  /* per layer, added to */
} rp_pipeline_t;

/* Runs `call` and adds the timer ticks it took to ticks[layer]. A MicroPython module (SEMHIL_NATMOD)
 * has no timer cheap enough to read around every layer's row: its layers are not timed. */
#ifdef SEMHIL_NATMOD
#define RP_TIMED(ticks, layer, call) \
    do {                             \
        (void)(ticks);               \
        call;                        \
    } while (0)
#else
#define RP_TIMED(ticks, layer, call)                                  \
    do {                                                              \
        const uint64_t start_ = th_timer_ticks();                     \
        call;                                                         \
        (ticks)[layer] += (uint32_t)(th_timer_ticks() - start_);      \
    } while (0)
#endif

void rp_begin(const rp_pipeline_t *p);              /* a new image */
int8_t *rp_input_slot(const rp_pipeline_t *p);      /* where the next input row (int8) goes */
void rp_input_row(const rp_pipeline_t *p);          /* it is there: compute all it makes possible */

#endif
