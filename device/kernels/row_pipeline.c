#include "row_pipeline.h"

#include <string.h>

static uint32_t conv_row_bytes(const k_conv2d_t *l)
{
    return (uint32_t)l->in_w * l->in_c;
}

/* Where stage i takes its next input row (i == n_stages: the tail). */
static int8_t *slot(const rp_pipeline_t *p, uint32_t i)
{
    if (i == p->n_stages)
        return p->tail_in;
    const rp_stage_t *s = &p->stages[i];
    if (s->kind == RP_CONV_WINDOW)
        return s->rows + (uint32_t)(s->rows_in % s->ring) * conv_row_bytes(s->conv);
    return s->in_row;
}

static void stage_row(const rp_pipeline_t *p, uint32_t i);

/* Stage i wrote its output row y into slot(p, i + 1): pass it on. */
static void emit(const rp_pipeline_t *p, uint32_t i, uint32_t y)
{
    if (i + 1 == p->n_stages)
        p->tail(p->tail_in, y);
    else
        stage_row(p, i + 1);
}

#define TIMED(s, call) RP_TIMED(p->ticks, (s)->layer, call)

static void conv_window(const rp_pipeline_t *p, uint32_t i, rp_stage_t *s, int y)
{
    const k_conv2d_t *l = s->conv;
    const k_rows_t in = {s->rows, s->ring};
    while (s->next_out < l->out_h) {
        const int top = s->next_out * l->stride_h - l->pad_h;
        const int last = top + l->kernel_h - 1 < l->in_h - 1 ? top + l->kernel_h - 1 : l->in_h - 1;
        if (last > y)
            return;
        TIMED(s, s->conv_row(l, in, s->next_out, slot(p, i + 1), p->scratch));
        emit(p, i, s->next_out++);
    }
}

static void conv_sums(const rp_pipeline_t *p, uint32_t i, rp_stage_t *s, int y)
{
    const k_conv2d_t *l = s->conv;
    const int oy = y / l->stride_h, ky = y % l->stride_h;
    if (oy >= l->out_h || ky >= l->kernel_h)
        return;
    TIMED(s, s->conv_sum_row(l, s->in_row, ky, s->sums, slot(p, i + 1), p->scratch));
    if (ky == l->kernel_h - 1)
        emit(p, i, (uint32_t)oy);
}

static void maxpool(const rp_pipeline_t *p, uint32_t i, rp_stage_t *s, int y)
{
    const k_maxpool_t *l = s->pool;
    const uint32_t out_row_bytes = (uint32_t)l->out_w * l->channels;
    const int lowest = y + l->pad_h - l->kernel_h + 1; /* output rows oy with oy * stride - pad in (y - kernel_h, y] */
    int oy = lowest <= 0 ? 0 : (lowest + l->stride_h - 1) / l->stride_h;
    for (; oy * l->stride_h - l->pad_h <= y && oy < l->out_h; oy++) {
        const int top = oy * l->stride_h - l->pad_h, last = top + l->kernel_h - 1;
        int8_t *pooled = s->rows + (uint32_t)(oy % s->ring) * out_row_bytes;
        TIMED(s, {
            if (y == (top < 0 ? 0 : top))
                memset(pooled, -128, out_row_bytes);
            k_maxpool_s8_merge_row(l, s->in_row, pooled);
        });
        if (y == (last < l->in_h - 1 ? last : l->in_h - 1)) {
            TIMED(s, memcpy(slot(p, i + 1), pooled, out_row_bytes));
            emit(p, i, (uint32_t)oy);
        }
    }
}

static void stage_row(const rp_pipeline_t *p, uint32_t i)
{
    rp_stage_t *s = &p->stages[i];
    const int y = s->rows_in++;
    if (s->kind == RP_CONV_WINDOW)
        conv_window(p, i, s, y);
    else if (s->kind == RP_CONV_SUMS)
        conv_sums(p, i, s, y);
    else
        maxpool(p, i, s, y);
}

void rp_begin(const rp_pipeline_t *p)
{
    for (uint32_t i = 0; i < p->n_stages; i++)
        p->stages[i].rows_in = p->stages[i].next_out = 0;
}

int8_t *rp_input_slot(const rp_pipeline_t *p)
{
    return slot(p, 0);
}

void rp_input_row(const rp_pipeline_t *p)
{
    stage_row(p, 0);
}
