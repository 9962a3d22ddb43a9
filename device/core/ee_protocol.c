#include "ee_protocol.h"

uint32_t ee_crc32(const uint8_t *data, uint32_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    while (n--) {
        crc ^= *data++;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void ee_cobs_send(const uint8_t *in, uint32_t n, void (*write)(const uint8_t *, uint32_t))
{
    uint32_t i = 0;
    for (;;) {
        uint32_t run = 0;
        while (i + run < n && in[i + run] != 0 && run < 254)
            run++;
        uint8_t code = (uint8_t)(run + 1);
        write(&code, 1);
        write(in + i, run);
        i += run;
        if (i == n)
            return; /* the last block, or a full one at the end: nothing follows */
        if (run < 254)
            i++; /* the zero this block stands for */
    }
}

int32_t ee_cobs_decode(const uint8_t *in, uint32_t n, uint8_t *out)
{
    uint32_t i = 0, o = 0;
    if (n == 0)
        return -1;
    while (i < n) {
        uint32_t code = in[i++];
        if (code == 0 || i + code - 1 > n)
            return -1;
        for (uint32_t k = 1; k < code; k++) {
            if (in[i] == 0)
                return -1;
            out[o++] = in[i++];
        }
        if (code != 0xFF && i < n)
            out[o++] = 0;
    }
    return (int32_t)o;
}

uint32_t ee_cobs_decode_prefix(const uint8_t *in, uint32_t n, uint8_t *out, uint32_t want)
{
    uint32_t i = 0, o = 0;
    while (i < n && o < want) {
        uint32_t code = in[i++];
        if (code == 0)
            break;
        for (uint32_t k = 1; k < code && o < want; k++) {
            if (i >= n || in[i] == 0)
                return o;
            out[o++] = in[i++];
        }
        if (code != 0xFF && o < want)
            out[o++] = 0;
    }
    return o;
}
