/* The framed UART protocol, as in host/semhil/protocol.py.
 * Frame: version u8 | type u8 | seq u16 LE | len u16 LE | payload[len] | crc32 u32 LE,
 * CRC-32 (zlib) over everything before it; on the wire COBS(frame) then one 0x00.
 * An image goes up in chunks of whole rows, one chunk in flight: IMAGE_CHUNK, answered CHUNK_OK
 * (send the next) or, for the chunk holding the image's last row, INFER_OK. */
#ifndef SEMHIL_EE_PROTOCOL_H
#define SEMHIL_EE_PROTOCOL_H

#include <stdint.h>

#define EE_PROTO_VERSION 2
#define EE_HEADER_BYTES 6
#define EE_CRC_BYTES 4
#define EE_CHUNK_HEADER_BYTES 4 /* IMAGE_CHUNK: image u16 | first_row u16, then the rows' pixels */
#define EE_INFER_OK_HEADER_BYTES 12 /* INFER_OK: ticks_total u32 | ticks_after_last_byte u32 | stack_peak u32, then the code */
#define EE_COBS_MAX(n) ((n) + (n) / 254 + 1) /* longest COBS encoding of n bytes */

enum {
    EE_INFO_REQ = 0x01,
    EE_IMAGE_CHUNK = 0x02,
    EE_LAYERS_REQ = 0x03,
    EE_RELEASE = 0x04, /* give the serial port back: a MicroPython board returns to its REPL */
    EE_INFO = 0x81,
    EE_INFER_OK = 0x82,
    EE_LAYERS = 0x83, /* name=ticks per layer of the last image, one a line */
    EE_CHUNK_OK = 0x84, /* image u16 | next_row u16: the chunk's rows are consumed, send the next */
    EE_RELEASED = 0x85,
    EE_ERROR = 0x7F,
};

enum {
    EE_BAD_CRC = 1,
    EE_BAD_LENGTH = 2,
    EE_UNKNOWN_TYPE = 3,
    EE_OVERSIZED = 4,
    EE_BAD_VERSION = 5,
    EE_BAD_INPUT_SIZE = 6,
    EE_BAD_COBS = 7,
    EE_MODEL_NOT_READY = 8,
    EE_IMAGE_OUT_OF_ORDER = 9,
    EE_IMAGE_NOT_BEGUN = 10,
    EE_IMAGE_CUT_SHORT = 11,
    EE_CHUNK_TOO_LARGE = 12,
};

uint32_t ee_crc32(const uint8_t *data, uint32_t n);
/* Sends COBS(in[0..n)) through write as it encodes (no delimiter, no buffer of its own). */
void ee_cobs_send(const uint8_t *in, uint32_t n, void (*write)(const uint8_t *, uint32_t));
/* Decodes n bytes (no delimiter); out may equal in. Returns the decoded length, or -1 if invalid. */
int32_t ee_cobs_decode(const uint8_t *in, uint32_t n, uint8_t *out);
/* Decodes at most `want` bytes from the start of an encoding that may be cut off; returns how many. */
uint32_t ee_cobs_decode_prefix(const uint8_t *in, uint32_t n, uint8_t *out, uint32_t want);

#endif
