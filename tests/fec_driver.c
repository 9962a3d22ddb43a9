/* ee_fec on stdin/stdout, for tests/test_fec.py.
 *   fec_driver encode <n> <nsym> <depth> <count>: count messages of n bytes in, ee_fec_encode of each out
 *   fec_driver interleave <n_bits> <depth>: (n_bits + 7) / 8 bytes in, ee_fec_interleave_bits out
 * Exits 1 if ee_fec_encode writes other than ee_fec_rs_encoded_bytes bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ee_fec.h"

#define MAX_BYTES 65536u

static uint8_t msg[MAX_BYTES], scratch[4 * MAX_BYTES], out[4 * MAX_BYTES];

static int encode(uint32_t n, uint32_t nsym, uint32_t depth, uint32_t count)
{
    uint32_t expected = ee_fec_rs_encoded_bytes(n, nsym);
    if (n > MAX_BYTES || expected > sizeof out)
        return 2;
    for (uint32_t i = 0; i < count; i++) {
        if (fread(msg, 1, n, stdin) != n)
            return 2;
        memset(out, 0xA5, sizeof out);
        if (ee_fec_encode(msg, n, nsym, depth, scratch, out) != expected)
            return 1;
        fwrite(out, 1, expected, stdout);
    }
    return 0;
}

static int interleave(uint32_t n_bits, uint32_t depth)
{
    uint32_t n = (n_bits + 7) / 8;
    if (n > MAX_BYTES || fread(msg, 1, n, stdin) != n)
        return 2;
    memset(out, 0xFF, n); /* the bits past n_bits must come out zero */
    ee_fec_interleave_bits(msg, n_bits, depth, out);
    fwrite(out, 1, n, stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "encode") == 0)
        return encode((uint32_t)atol(argv[2]), (uint32_t)atol(argv[3]), (uint32_t)atol(argv[4]),
                      (uint32_t)atol(argv[5]));
    if (argc == 4 && strcmp(argv[1], "interleave") == 0)
        return interleave((uint32_t)atol(argv[2]), (uint32_t)atol(argv[3]));
    fprintf(stderr, "usage: fec_driver encode <n> <nsym> <depth> <count> | interleave <n_bits> <depth>\n");
    return 2;
}
