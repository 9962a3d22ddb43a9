/* Bit-level protection of the code bytes before they go into radio packets, as host/radio/fec.py decodes
 * (and encodes bit for bit): Reed-Solomon, then a bit block interleaver.
 *
 * Reed-Solomon over GF(2^8) (primitive polynomial 0x11d, generator 2, first root alpha^0), the layout of
 * reedsolo's RSCodec(nsym): the message is cut into blocks of 255 - nsym data bytes (the last one shorter:
 * a shortened code), each followed by its nsym parity bytes.
 * Interleaver: bit i (most significant bit of each byte first) is written row by row into a matrix of
 * `depth` rows and ceil(n_bits / depth) columns and read column by column, skipping the cells past n_bits.
 *
 * No heap, no writable static data. Worst-case stack of any call: EE_FEC_MAX_STACK_BYTES (the generator
 * polynomial, nsym + 1 <= 255 bytes, is built on the stack in each ee_fec_rs_encode). */
#ifndef SEMHIL_EE_FEC_H
#define SEMHIL_EE_FEC_H

#include <stdint.h>

#define EE_FEC_RS_BLOCK_BYTES 255u /* data + parity bytes of a full Reed-Solomon block */
#define EE_FEC_RS_MAX_PARITY 254u  /* a block keeps at least one data byte */
/* Bound on the stack of any call here. The deepest chain, ee_fec_encode -> ee_fec_rs_encode (with the generator
 * polynomial), takes 376 bytes on the Cortex-M4 (arm-none-eabi-gcc -O2, -fstack-usage), plus memcpy/memset's. */
#define EE_FEC_MAX_STACK_BYTES 448u

/* Bytes ee_fec_rs_encode writes for n message bytes; n itself for nsym 0, 0 for nsym > EE_FEC_RS_MAX_PARITY. */
uint32_t ee_fec_rs_encoded_bytes(uint32_t n, uint32_t nsym);

/* Reed-Solomon encodes msg[n] into out (which must not overlap msg); returns the bytes written,
 * ee_fec_rs_encoded_bytes(n, nsym). nsym 0 copies msg; nsym > EE_FEC_RS_MAX_PARITY writes nothing, returns 0. */
uint32_t ee_fec_rs_encode(const uint8_t *msg, uint32_t n, uint32_t nsym, uint8_t *out);

/* Block-interleaves the first n_bits bits of in into out[(n_bits + 7) / 8] (not overlapping in); the bits of
 * out's last byte beyond n_bits are zero. depth 0 or 1 copies. */
void ee_fec_interleave_bits(const uint8_t *in, uint32_t n_bits, uint32_t depth, uint8_t *out);

/* Reed-Solomon (nsym parity bytes per block, 0 = none) then the bit interleaver (depth rows, 1 = none):
 * the bytes to put into radio packets. scratch holds the Reed-Solomon output, ee_fec_rs_encoded_bytes(n, nsym)
 * bytes, when depth > 1 and nsym > 0 (it may be NULL otherwise); msg, scratch and out do not overlap.
 * Returns the bytes written to out, ee_fec_rs_encoded_bytes(n, nsym). */
uint32_t ee_fec_encode(const uint8_t *msg, uint32_t n, uint32_t nsym, uint32_t depth, uint8_t *scratch,
                       uint8_t *out);

#endif
