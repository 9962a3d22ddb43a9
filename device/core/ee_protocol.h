/* The framed UART protocol, as in host/semhil/protocol.py.
 * Frame: version u8 | type u8 | seq u16 LE | len u16 LE | payload[len] | crc32 u32 LE,
 * CRC-32 (zlib) over everything before it; on the wire COBS(frame) then one 0x00. */
#ifndef SEMHIL_EE_PROTOCOL_H
#define SEMHIL_EE_PROTOCOL_H

#include <stdint.h>

#define EE_PROTO_VERSION 1
#define EE_HEADER_BYTES 6
#define EE_CRC_BYTES 4
#define EE_COBS_MAX(n) ((n) + (n) / 254 + 1) /* longest COBS encoding of n bytes */

enum {
    EE_INFO_REQ = 0x01,
    EE_INFER = 0x02,
    EE_LAYERS_REQ = 0x03,
    EE_INFO = 0x81,
    EE_INFER_OK = 0x82,
    EE_LAYERS = 0x83, /* name=ticks per layer of the last inference, one a line */
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
};

uint32_t ee_crc32(const uint8_t *data, uint32_t n);
/* out must hold EE_COBS_MAX(n) bytes; returns the encoded length (no delimiter). */
uint32_t ee_cobs_encode(const uint8_t *in, uint32_t n, uint8_t *out);
/* Decodes n bytes (no delimiter); out may equal in. Returns the decoded length, or -1 if invalid. */
int32_t ee_cobs_decode(const uint8_t *in, uint32_t n, uint8_t *out);

#endif
