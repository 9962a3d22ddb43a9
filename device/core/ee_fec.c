#include "ee_fec.h"

#include <string.h>

/* GF(2^8) with primitive polynomial 0x11d: GF_EXP[i] = 2^i, GF_LOG[GF_EXP[i]] = i (GF_LOG[0] unused). */
static const uint8_t GF_EXP[255] = {
      1,   2,   4,   8,  16,  32,  64, 128,  29,  58, 116, 232, 205, 135,  19,  38,
     76, 152,  45,  90, 180, 117, 234, 201, 143,   3,   6,  12,  24,  48,  96, 192,
    157,  39,  78, 156,  37,  74, 148,  53, 106, 212, 181, 119, 238, 193, 159,  35,
     70, 140,   5,  10,  20,  40,  80, 160,  93, 186, 105, 210, 185, 111, 222, 161,
     95, 190,  97, 194, 153,  47,  94, 188, 101, 202, 137,  15,  30,  60, 120, 240,
    253, 231, 211, 187, 107, 214, 177, 127, 254, 225, 223, 163,  91, 182, 113, 226,
    217, 175,  67, 134,  17,  34,  68, 136,  13,  26,  52, 104, 208, 189, 103, 206,
    129,  31,  62, 124, 248, 237, 199, 147,  59, 118, 236, 197, 151,  51, 102, 204,
    133,  23,  46,  92, 184, 109, 218, 169,  79, 158,  33,  66, 132,  21,  42,  84,
    168,  77, 154,  41,  82, 164,  85, 170,  73, 146,  57, 114, 228, 213, 183, 115,
    230, 209, 191,  99, 198, 145,  63, 126, 252, 229, 215, 179, 123, 246, 241, 255,
    227, 219, 171,  75, 150,  49,  98, 196, 149,  55, 110, 220, 165,  87, 174,  65,
    130,  25,  50, 100, 200, 141,   7,  14,  28,  56, 112, 224, 221, 167,  83, 166,
     81, 162,  89, 178, 121, 242, 249, 239, 195, 155,  43,  86, 172,  69, 138,   9,
     18,  36,  72, 144,  61, 122, 244, 245, 247, 243, 251, 235, 203, 139,  11,  22,
     44,  88, 176, 125, 250, 233, 207, 131,  27,  54, 108, 216, 173,  71, 142
};

static const uint8_t GF_LOG[256] = {
      0,   0,   1,  25,   2,  50,  26, 198,   3, 223,  51, 238,  27, 104, 199,  75,
      4, 100, 224,  14,  52, 141, 239, 129,  28, 193, 105, 248, 200,   8,  76, 113,
      5, 138, 101,  47, 225,  36,  15,  33,  53, 147, 142, 218, 240,  18, 130,  69,
     29, 181, 194, 125, 106,  39, 249, 185, 201, 154,   9, 120,  77, 228, 114, 166,
      6, 191, 139,  98, 102, 221,  48, 253, 226, 152,  37, 179,  16, 145,  34, 136,
     54, 208, 148, 206, 143, 150, 219, 189, 241, 210,  19,  92, 131,  56,  70,  64,
     30,  66, 182, 163, 195,  72, 126, 110, 107,  58,  40,  84, 250, 133, 186,  61,
    202,  94, 155, 159,  10,  21, 121,  43,  78, 212, 229, 172, 115, 243, 167,  87,
      7, 112, 192, 247, 140, 128,  99,  13, 103,  74, 222, 237,  49, 197, 254,  24,
    227, 165, 153, 119,  38, 184, 180, 124,  17,  68, 146, 217,  35,  32, 137,  46,
     55,  63, 209,  91, 149, 188, 207, 205, 144, 135, 151, 178, 220, 252, 190,  97,
    242,  86, 211, 171,  20,  42,  93, 158, 132,  60,  57,  83,  71, 109,  65, 162,
     31,  45,  67, 216, 183, 123, 164, 118, 196,  23,  73, 236, 127,  12, 111, 246,
    108, 161,  59,  82,  41, 157,  85, 170, 251,  96, 134, 177, 187, 204,  62,  90,
    203,  89,  95, 176, 156, 169, 160,  81,  11, 245,  22, 235, 122, 117,  44, 215,
     79, 174, 213, 233, 230, 231, 173, 232, 116, 214, 244, 234, 168,  80,  88, 175
};

static uint8_t gf_mul(uint8_t a, uint8_t b)
{
    if (a == 0 || b == 0)
        return 0;
    return GF_EXP[((uint32_t)GF_LOG[a] + GF_LOG[b]) % 255u];
}

/* gen[0..nsym], highest degree first: the product of (x + 2^i) for i < nsym, so gen[0] = 1. */
static void rs_generator(uint32_t nsym, uint8_t *gen)
{
    gen[0] = 1;
    for (uint32_t i = 0; i < nsym; i++) {
        gen[i + 1] = 0;
        for (uint32_t j = i + 1; j > 0; j--)
            gen[j] ^= gf_mul(gen[j - 1], GF_EXP[i]);
    }
}

/* out[k + nsym] = data[k] then the remainder of data(x) * x^nsym divided by gen(x), by synthetic division. */
static void rs_encode_block(const uint8_t *data, uint32_t k, const uint8_t *gen, uint32_t nsym, uint8_t *out)
{
    memcpy(out, data, k);
    memset(out + k, 0, nsym);
    for (uint32_t i = 0; i < k; i++) {
        uint8_t coef = out[i];
        if (coef != 0)
            for (uint32_t j = 1; j <= nsym; j++)
                out[i + j] ^= gf_mul(coef, gen[j]);
    }
    memcpy(out, data, k); /* the division left its quotient over the data */
}

uint32_t ee_fec_rs_encoded_bytes(uint32_t n, uint32_t nsym)
{
    if (nsym > EE_FEC_RS_MAX_PARITY)
        return 0;
    uint32_t k = EE_FEC_RS_BLOCK_BYTES - nsym;
    return n + nsym * ((n + k - 1) / k);
}

uint32_t ee_fec_rs_encode(const uint8_t *msg, uint32_t n, uint32_t nsym, uint8_t *out)
{
    if (nsym > EE_FEC_RS_MAX_PARITY)
        return 0;
    if (nsym == 0) {
        memcpy(out, msg, n);
        return n;
    }
    uint8_t gen[EE_FEC_RS_MAX_PARITY + 1];
    rs_generator(nsym, gen);
    uint32_t k = EE_FEC_RS_BLOCK_BYTES - nsym, written = 0;
    for (uint32_t start = 0; start < n; start += k) {
        uint32_t block = n - start < k ? n - start : k;
        rs_encode_block(msg + start, block, gen, nsym, out + written);
        written += block + nsym;
    }
    return written;
}

void ee_fec_interleave_bits(const uint8_t *in, uint32_t n_bits, uint32_t depth, uint8_t *out)
{
    memset(out, 0, (n_bits + 7) / 8);
    if (depth == 0 || depth > n_bits) /* a single column: the identity */
        depth = 1;
    uint32_t columns = (n_bits + depth - 1) / depth, j = 0;
    for (uint32_t column = 0; column < columns; column++)
        for (uint32_t i = column; i < n_bits; i += columns) { /* down the column: rows 0, 1, ... */
            if (in[i / 8] & (0x80u >> (i % 8)))
                out[j / 8] |= (uint8_t)(0x80u >> (j % 8));
            j++;
        }
}

uint32_t ee_fec_encode(const uint8_t *msg, uint32_t n, uint32_t nsym, uint32_t depth, uint8_t *scratch,
                       uint8_t *out)
{
    if (depth <= 1)
        return ee_fec_rs_encode(msg, n, nsym, out);
    if (nsym == 0) {
        ee_fec_interleave_bits(msg, 8 * n, depth, out);
        return n;
    }
    uint32_t written = ee_fec_rs_encode(msg, n, nsym, scratch);
    ee_fec_interleave_bits(scratch, 8 * written, depth, out);
    return written;
}
