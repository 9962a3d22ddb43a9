/* The firmware's main loop: read COBS frames from the UART, answer INFO and INFER, and answer
 * ERROR to anything malformed without ever getting stuck. */
#include <stdint.h>

#include "ee_protocol.h"
#include "model.h"
#include "th_port.h"

#define FRAME_MAX (EE_HEADER_BYTES + MODEL_INPUT_BYTES + EE_CRC_BYTES)
#define RX_BYTES (EE_COBS_MAX(FRAME_MAX) + 16)
#define INFO_MAX 1024
#define INFER_OK_BYTES (8 + MODEL_CODE_BYTES)
#define REPLY_MAX (INFO_MAX > INFER_OK_BYTES ? INFO_MAX : INFER_OK_BYTES)
#define TX_FRAME_MAX (EE_HEADER_BYTES + REPLY_MAX + EE_CRC_BYTES)

static uint8_t rx[RX_BYTES];
static uint8_t tx_frame[TX_FRAME_MAX];
static uint8_t tx_wire[EE_COBS_MAX(TX_FRAME_MAX) + 1];
static uint8_t *const reply = tx_frame + EE_HEADER_BYTES;
static int model_status; /* device_half_init's result: 0 when the model can run */

static void put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    put_u16(p, v);
    put_u16(p + 2, v >> 16);
}

static void send(uint8_t type, uint32_t seq, uint32_t len)
{
    tx_frame[0] = EE_PROTO_VERSION;
    tx_frame[1] = type;
    put_u16(tx_frame + 2, seq);
    put_u16(tx_frame + 4, len);
    put_u32(reply + len, ee_crc32(tx_frame, EE_HEADER_BYTES + len));
    uint32_t n = ee_cobs_encode(tx_frame, EE_HEADER_BYTES + len + EE_CRC_BYTES, tx_wire);
    tx_wire[n++] = 0;
    th_uart_write(tx_wire, n);
}

static uint32_t put_str(uint32_t at, const char *s)
{
    while (*s && at < REPLY_MAX)
        reply[at++] = (uint8_t)*s++;
    return at;
}

static uint32_t put_uint(uint32_t at, uint32_t v)
{
    char digits[11];
    int i = 10;
    digits[i] = 0;
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return put_str(at, digits + i);
}

static uint32_t put_line(uint32_t at, const char *key, const char *value)
{
    return put_str(put_str(put_str(put_str(at, key), "="), value), "\n");
}

static uint32_t put_line_uint(uint32_t at, const char *key, uint32_t value)
{
    return put_str(put_uint(put_str(put_str(at, key), "="), value), "\n");
}

static void send_error(uint32_t seq, uint8_t code, const char *message)
{
    reply[0] = code;
    send(EE_ERROR, seq, put_str(1, message));
}

static void send_info(uint32_t seq)
{
    uint32_t at = put_line(0, "proto", "1");
    at = put_line(at, "board", th_board_name());
    at = put_line(at, "reset_cause", th_reset_cause());
    at = put_line(at, "bundle_hash", MODEL_BUNDLE_HASH);
    at = put_line(at, "backend", MODEL_BACKEND);
    at = put_line_uint(at, "core_clock_hz", th_core_clock_hz());
    at = put_line_uint(at, "timer_hz", th_timer_hz());
    at = put_line(at, "input_shape", MODEL_INPUT_SHAPE);
    at = put_line_uint(at, "input_bytes", MODEL_INPUT_BYTES);
    at = put_line_uint(at, "code_bytes", MODEL_CODE_BYTES);
    at = put_line_uint(at, "arena_bytes", device_half_arena_bytes());
    at = put_line_uint(at, "stack_bytes", th_stack_bytes());
    at = put_line_uint(at, "model_status", (uint32_t)model_status);
    send(EE_INFO, seq, at);
}

static void send_layers(uint32_t seq)
{
    uint32_t at = 0;
    for (int i = 0; i < MODEL_LAYERS; i++)
        at = put_line_uint(at, device_half_layer_names[i], device_half_layer_ticks[i]);
    send(EE_LAYERS, seq, at);
}

struct job {
    const uint8_t *image;
    uint8_t *code;
    uint64_t ticks;
};

static void run_model(void *arg)
{
    struct job *job = arg;
    uint64_t start = th_timer_ticks();
    device_half_run(job->image, job->code);
    job->ticks = th_timer_ticks() - start;
}

static void send_infer_ok(uint32_t seq, const uint8_t *image)
{
    struct job job = {image, reply + 8, 0};
    uint32_t stack_peak = th_run_measuring_stack(run_model, &job);
    put_u32(reply, job.ticks > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)job.ticks);
    put_u32(reply + 4, stack_peak);
    send(EE_INFER_OK, seq, INFER_OK_BYTES);
}

/* frame: the n bytes between two delimiters, still COBS-encoded; decoded in place. */
static void handle_frame(uint8_t *frame, uint32_t n)
{
    int32_t decoded = ee_cobs_decode(frame, n, frame);
    if (decoded < 0) {
        send_error(0, EE_BAD_COBS, "bad COBS encoding");
        return;
    }
    uint32_t size = (uint32_t)decoded;
    uint32_t seq = size >= 4 ? frame[2] | (uint32_t)frame[3] << 8 : 0;
    if (size < EE_HEADER_BYTES + EE_CRC_BYTES) {
        send_error(seq, EE_BAD_LENGTH, "frame shorter than header and CRC");
        return;
    }
    uint32_t body = size - EE_CRC_BYTES;
    uint32_t crc = frame[body] | (uint32_t)frame[body + 1] << 8 | (uint32_t)frame[body + 2] << 16 |
                   (uint32_t)frame[body + 3] << 24;
    if (crc != ee_crc32(frame, body)) {
        send_error(seq, EE_BAD_CRC, "CRC mismatch");
        return;
    }
    if (frame[0] != EE_PROTO_VERSION) {
        send_error(seq, EE_BAD_VERSION, "protocol version is not 1");
        return;
    }
    uint32_t len = frame[4] | (uint32_t)frame[5] << 8;
    if (len != body - EE_HEADER_BYTES) {
        send_error(seq, EE_BAD_LENGTH, "length field disagrees with frame size");
        return;
    }
    switch (frame[1]) {
    case EE_INFO_REQ:
        send_info(seq);
        break;
    case EE_LAYERS_REQ:
        send_layers(seq);
        break;
    case EE_INFER:
        if (model_status != 0)
            send_error(seq, EE_MODEL_NOT_READY, "the model failed to initialise (see model_status in INFO)");
        else if (len != MODEL_INPUT_BYTES)
            send_error(seq, EE_BAD_INPUT_SIZE, "INFER payload size is not input_bytes");
        else
            send_infer_ok(seq, frame + EE_HEADER_BYTES);
        break;
    default:
        send_error(seq, EE_UNKNOWN_TYPE, "unknown message type");
    }
}

int main(void)
{
    th_init();
    model_status = device_half_init();
    for (;;) {
        uint32_t n = 0;
        int oversized = 0;
        for (int c; (c = th_uart_read_byte()) != 0;) {
            if (n < RX_BYTES)
                rx[n++] = (uint8_t)c;
            else
                oversized = 1;
        }
        if (oversized)
            send_error(0, EE_OVERSIZED, "frame longer than the receive buffer");
        else if (n > 0)
            handle_frame(rx, n);
    }
}
