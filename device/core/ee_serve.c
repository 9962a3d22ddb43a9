/* The protocol loop of a board: read COBS frames from the UART, take an image chunk by chunk (each
 * chunk's rows go to the model as they arrive), answer INFO and LAYERS, and answer ERROR to
 * anything malformed or out of turn without ever getting stuck or coding a partial image. The same
 * loop runs in semhil's firmware (ee_main.c) and in the MicroPython module (device/micropython/).
 *
 * One buffer holds the frame received and then, once the request is taken apart, the reply; the
 * reply is COBS-encoded as it is sent. Only the code of the image in progress lives elsewhere. */
#include <stdint.h>

#include "ee_fec.h"
#include "ee_protocol.h"
#include "ee_serve.h"
#include "model.h"
#include "th_port.h"

#include "board_config.h"

/* Rows one chunk may carry: as many as BOARD_CHUNK_BYTES (from the board's RAM) holds, at least one. */
#define CHUNK_ROWS (BOARD_CHUNK_BYTES / MODEL_ROW_BYTES < 1 ? 1 : BOARD_CHUNK_BYTES / MODEL_ROW_BYTES > MODEL_INPUT_ROWS \
                    ? MODEL_INPUT_ROWS : BOARD_CHUNK_BYTES / MODEL_ROW_BYTES)
#define CHUNK_BYTES (CHUNK_ROWS * MODEL_ROW_BYTES)
#define RX_FRAME_MAX (EE_HEADER_BYTES + EE_CHUNK_HEADER_BYTES + CHUNK_BYTES + EE_CRC_BYTES)
#define RX_BYTES (EE_COBS_MAX(RX_FRAME_MAX) + 16)
#define INFO_MAX 768 /* the INFO text (about 400 bytes, and a MicroPython board's lines) */
#define INFER_OK_BYTES (EE_INFER_OK_HEADER_BYTES + MODEL_CODE_BYTES)
#define MAX2(a, b) ((a) > (b) ? (a) : (b))
#define TX_FRAME_MAX (EE_HEADER_BYTES + MAX2(INFO_MAX, INFER_OK_BYTES) + EE_CRC_BYTES)
#define BUF_BYTES MAX2(RX_BYTES, TX_FRAME_MAX)
#define REPLY_MAX (BUF_BYTES - EE_HEADER_BYTES - EE_CRC_BYTES)

SEMHIL_STATIC uint8_t buf[BUF_BYTES] __attribute__((aligned(4)));
#define reply (buf + EE_HEADER_BYTES)
SEMHIL_STATIC int model_status; /* device_half_init's result: 0 when the model can run */
SEMHIL_STATIC const char *info_extra; /* more INFO lines from the board's port */

/* The image in progress, and the chunk consumed last (answered again if it comes again). */
SEMHIL_STATIC struct {
    uint8_t code[MODEL_CODE_BYTES]; /* the finished image's code as sent, until the next image begins */
#if MODEL_FEC
    uint8_t packed[MODEL_PACKED_BYTES]; /* given to device_half_begin: the code before FEC, then the side bytes */
    uint8_t fec_scratch[MODEL_CODE_BYTES];
#endif
    int in_progress;
    uint16_t image, next_row;
    uint64_t ticks_total; /* device compute of the image so far */
    uint32_t ticks_after_last_byte, stack_peak;
    int last_valid, last_final; /* last_final: the last chunk finished its image (answered INFER_OK) */
    uint16_t last_image, last_first_row, last_rows;
} img;

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

static uint32_t get_u16(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8;
}

static void send(uint8_t type, uint32_t seq, uint32_t len)
{
    static const uint8_t delimiter = 0;
    buf[0] = EE_PROTO_VERSION;
    buf[1] = type;
    put_u16(buf + 2, seq);
    put_u16(buf + 4, len);
    put_u32(reply + len, ee_crc32(buf, EE_HEADER_BYTES + len));
    ee_cobs_send(buf, EE_HEADER_BYTES + len + EE_CRC_BYTES, th_uart_write);
    th_uart_write(&delimiter, 1);
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

/* An ERROR's text is built from pieces: text, number, text, number, text (NULL ends it early). */
static void send_error_n(uint32_t seq, uint8_t code, const char *a, uint32_t x, const char *b, uint32_t y, const char *c)
{
    reply[0] = code;
    uint32_t at = put_str(1, a);
    if (b) {
        at = put_str(put_uint(at, x), b);
        if (c)
            at = put_str(put_uint(at, y), c);
    }
    send(EE_ERROR, seq, at);
}

static void send_error(uint32_t seq, uint8_t code, const char *message)
{
    send_error_n(seq, code, message, 0, 0, 0, 0);
}

static void send_info(uint32_t seq)
{
    uint32_t at = put_line_uint(0, "proto", EE_PROTO_VERSION);
    at = put_line(at, "board", th_board_name());
    at = put_line(at, "reset_cause", th_reset_cause());
    at = put_line(at, "bundle_hash", MODEL_BUNDLE_HASH);
    at = put_line(at, "backend", MODEL_BACKEND);
    at = put_line_uint(at, "core_clock_hz", th_core_clock_hz());
    at = put_line_uint(at, "timer_hz", th_timer_hz());
    at = put_line(at, "input_shape", MODEL_INPUT_SHAPE);
    at = put_line_uint(at, "input_bytes", MODEL_INPUT_BYTES);
    at = put_line_uint(at, "input_rows", MODEL_INPUT_ROWS);
    at = put_line_uint(at, "row_bytes", MODEL_ROW_BYTES);
    at = put_line_uint(at, "chunk_rows", CHUNK_ROWS);
    at = put_line_uint(at, "chunk_bytes", CHUNK_BYTES);
    at = put_line_uint(at, "code_bytes", MODEL_CODE_BYTES);
    at = put_line_uint(at, "arena_bytes", device_half_arena_bytes());
    at = put_line_uint(at, "stack_bytes", th_stack_bytes());
    at = put_line_uint(at, "model_status", (uint32_t)model_status);
    at = put_str(at, info_extra);
    send(EE_INFO, seq, at);
}

/* name=ticks per layer; empty where the layers are not timed (SEMHIL_NATMOD: no timer cheap enough). */
static void send_layers(uint32_t seq)
{
    uint32_t at = 0;
#ifndef SEMHIL_NATMOD
    const char *name = device_half_layer_names;
    for (int i = 0; i < MODEL_LAYERS; i++) {
        at = put_line_uint(at, name, device_half_layer_ticks[i]);
        while (*name++)
            ;
    }
#endif
    send(EE_LAYERS, seq, at);
}

struct chunk {
    const uint8_t *pixels;
    uint32_t first_row, rows;
    uint64_t ticks;
};

#if MODEL_FEC
#define MODEL_OUTPUT img.packed
/* A protected bundle's code goes through its FEC (RS, then the bit interleaver); the side bytes follow as they are. */
static void protect_code(void)
{
    uint32_t n = ee_fec_encode(img.packed, MODEL_FEC_CODE_BYTES, MODEL_FEC_RS_PARITY, MODEL_FEC_INTERLEAVE_DEPTH,
                               img.fec_scratch, img.code);
    for (uint32_t i = MODEL_FEC_CODE_BYTES; i < MODEL_PACKED_BYTES; i++)
        img.code[n++] = img.packed[i];
}
#else
#define MODEL_OUTPUT img.code
#endif

/* Runs on the painted stack: the chunk's rows through the model (and the FEC), timed. */
static void run_chunk(void *arg)
{
    struct chunk *chunk = arg;
    uint64_t start = th_timer_ticks();
    if (chunk->first_row == 0)
        device_half_begin(MODEL_OUTPUT);
    device_half_rows(chunk->pixels, chunk->rows);
    if (chunk->first_row + chunk->rows == MODEL_INPUT_ROWS) {
        device_half_end();
#if MODEL_FEC
        protect_code();
#endif
    }
    chunk->ticks = th_timer_ticks() - start;
}

static uint32_t clamp_u32(uint64_t v)
{
    return v > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)v;
}

/* The answer to the chunk consumed last: CHUNK_OK, or INFER_OK when it finished its image. */
static void answer_last_chunk(uint32_t seq)
{
    if (img.last_final) {
        put_u32(reply, clamp_u32(img.ticks_total));
        put_u32(reply + 4, img.ticks_after_last_byte);
        put_u32(reply + 8, img.stack_peak);
        for (uint32_t i = 0; i < MODEL_CODE_BYTES; i++)
            reply[EE_INFER_OK_HEADER_BYTES + i] = img.code[i];
        send(EE_INFER_OK, seq, INFER_OK_BYTES);
    } else {
        put_u16(reply, img.last_image);
        put_u16(reply + 2, (uint32_t)img.last_first_row + img.last_rows);
        send(EE_CHUNK_OK, seq, 4);
    }
}

/* payload: image u16 | first_row u16 | rows of pixels; len checked to be 4 + a whole number >= 1 of rows. */
static void take_chunk(uint32_t seq, const uint8_t *payload, uint32_t len)
{
    uint32_t image = get_u16(payload), first_row = get_u16(payload + 2);
    uint32_t rows = (len - EE_CHUNK_HEADER_BYTES) / MODEL_ROW_BYTES;
    if (rows > CHUNK_ROWS) {
        send_error_n(seq, EE_CHUNK_TOO_LARGE, "chunk of ", rows, " rows; at most chunk_rows=", CHUNK_ROWS, " rows a chunk");
        return;
    }
    if (first_row + rows > MODEL_INPUT_ROWS) {
        send_error_n(seq, EE_CHUNK_TOO_LARGE, "chunk's last row would be row ", first_row + rows - 1,
                     ", past the image's end: rows 0 to input_rows-1, input_rows=", MODEL_INPUT_ROWS, "");
        return;
    }
    if (img.last_valid && image == img.last_image && first_row == img.last_first_row && rows == img.last_rows) {
        answer_last_chunk(seq); /* its answer was lost: the rows are not consumed twice */
        return;
    }
    if (first_row == 0 && img.in_progress) {
        uint32_t cut_at = img.next_row;
        img.in_progress = 0;
        img.last_valid = 0;
        send_error_n(seq, EE_IMAGE_CUT_SHORT, "the unfinished image was cut short after row ", cut_at,
                     " and is dropped; send this chunk again to begin image ", image, "");
        return;
    }
    if (first_row > 0 && (!img.in_progress || image != img.image)) {
        if (img.in_progress)
            send_error_n(seq, EE_IMAGE_NOT_BEGUN, "image ", image, " has not begun (image ", img.image,
                         " is in progress); send its rows from row 0");
        else
            send_error_n(seq, EE_IMAGE_NOT_BEGUN, "image ", image, " has not begun (no image in progress); send its rows from row 0", 0, 0);
        return;
    }
    if (first_row > 0 && first_row != img.next_row) {
        send_error_n(seq, EE_IMAGE_OUT_OF_ORDER, "chunk begins at row ", first_row, "; expected row ", img.next_row, "");
        return;
    }
    if (first_row == 0) {
        img.in_progress = 1;
        img.image = (uint16_t)image;
        img.next_row = 0;
        img.ticks_total = 0;
        img.stack_peak = 0;
    }
    struct chunk chunk = {payload + EE_CHUNK_HEADER_BYTES, first_row, rows, 0};
    uint32_t stack = th_run_measuring_stack(run_chunk, &chunk);
    img.ticks_total += chunk.ticks;
    if (stack > img.stack_peak)
        img.stack_peak = stack;
    img.next_row = (uint16_t)(first_row + rows);
    img.last_valid = 1;
    img.last_image = (uint16_t)image;
    img.last_first_row = (uint16_t)first_row;
    img.last_rows = (uint16_t)rows;
    img.last_final = img.next_row == MODEL_INPUT_ROWS;
    if (img.last_final) {
        img.in_progress = 0;
        img.ticks_after_last_byte = clamp_u32(chunk.ticks);
    }
    answer_last_chunk(seq);
}

/* frame: the n bytes between two delimiters, still COBS-encoded; decoded in place. Returns 1 when
 * the frame was RELEASE. */
static int handle_frame(uint8_t *frame, uint32_t n)
{
    int32_t decoded = ee_cobs_decode(frame, n, frame);
    if (decoded < 0) {
        send_error(0, EE_BAD_COBS, "bad COBS encoding");
        return 0;
    }
    uint32_t size = (uint32_t)decoded;
    uint32_t seq = size >= 4 ? get_u16(frame + 2) : 0;
    if (size < EE_HEADER_BYTES + EE_CRC_BYTES) {
        send_error(seq, EE_BAD_LENGTH, "frame shorter than header and CRC");
        return 0;
    }
    uint32_t body = size - EE_CRC_BYTES;
    uint32_t crc = frame[body] | (uint32_t)frame[body + 1] << 8 | (uint32_t)frame[body + 2] << 16 |
                   (uint32_t)frame[body + 3] << 24;
    if (crc != ee_crc32(frame, body)) {
        send_error(seq, EE_BAD_CRC, "CRC mismatch");
        return 0;
    }
    if (frame[0] != EE_PROTO_VERSION) {
        send_error_n(seq, EE_BAD_VERSION, "protocol version ", frame[0], "; this firmware speaks version ", EE_PROTO_VERSION, "");
        return 0;
    }
    uint32_t len = get_u16(frame + 4);
    if (len != body - EE_HEADER_BYTES) {
        send_error(seq, EE_BAD_LENGTH, "length field disagrees with frame size");
        return 0;
    }
    switch (frame[1]) {
    case EE_INFO_REQ:
        send_info(seq);
        break;
    case EE_LAYERS_REQ:
        send_layers(seq);
        break;
    case EE_RELEASE:
        send(EE_RELEASED, seq, 0);
        return 1;
    case EE_IMAGE_CHUNK:
        if (model_status != 0)
            send_error(seq, EE_MODEL_NOT_READY, "the model failed to initialise (see model_status in INFO)");
        else if (len < EE_CHUNK_HEADER_BYTES + MODEL_ROW_BYTES || (len - EE_CHUNK_HEADER_BYTES) % MODEL_ROW_BYTES != 0)
            send_error_n(seq, EE_BAD_INPUT_SIZE, "IMAGE_CHUNK payload of ", len,
                         " bytes; expected 4 (image, first_row) + 1 or more whole rows of row_bytes=", MODEL_ROW_BYTES, "");
        else
            take_chunk(seq, frame + EE_HEADER_BYTES, len);
        break;
    default:
        send_error(seq, EE_UNKNOWN_TYPE, "unknown message type");
    }
    return 0;
}

/* A frame too long for the buffer: an IMAGE_CHUNK of more rows than a chunk may carry, if its
 * first bytes say so (its CRC cannot be checked), else a frame too long for any message. */
static void refuse_oversized(void)
{
    uint8_t header[EE_HEADER_BYTES];
    if (ee_cobs_decode_prefix(buf, RX_BYTES, header, EE_HEADER_BYTES) == EE_HEADER_BYTES && header[0] == EE_PROTO_VERSION &&
        header[1] == EE_IMAGE_CHUNK)
        send_error_n(get_u16(header + 2), EE_CHUNK_TOO_LARGE, "IMAGE_CHUNK payload of ", get_u16(header + 4),
                     " bytes; at most chunk_bytes=", CHUNK_BYTES, " pixels (chunk_rows rows) after its 4-byte header");
    else
        send_error_n(0, EE_OVERSIZED, "frame longer than the receive buffer of ", RX_BYTES, " bytes", 0, 0);
}

void ee_start(const char *extra_info)
{
    info_extra = extra_info;
    model_status = device_half_init();
}

void ee_serve(void)
{
    for (int released = 0; !released;) {
        uint32_t n = 0;
        int oversized = 0;
        for (int c; (c = th_uart_read_byte()) != 0;) {
            if (n < RX_BYTES)
                buf[n++] = (uint8_t)c;
            else
                oversized = 1;
        }
        if (oversized)
            refuse_oversized();
        else if (n > 0)
            released = handle_frame(buf, n);
    }
}
