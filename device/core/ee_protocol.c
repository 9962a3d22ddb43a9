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

uint32_t ee_cobs_encode(const uint8_t *in, uint32_t n, uint8_t *out)
{
    uint32_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (uint32_t i = 0; i < n; i++) {
        if (in[i] != 0) {
            out[o++] = in[i];
            code++;
        }
        if (in[i] == 0 || (code == 0xFF && i + 1 < n)) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        }
    }
    out[code_at] = code;
    return o;
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
