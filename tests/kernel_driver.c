/* Test driver: runs the generated model on every image read from stdin (fed in chunks of rows, as the
 * firmware is), writes the codes to stdout. */
#include <stdio.h>

#include "model.h"
#include "th_port.h"

uint64_t th_timer_ticks(void)
{
    return 0;
}

uint32_t th_timer_hz(void)
{
    return 1000000u;
}

#define CHUNK_ROWS 3 /* any number of rows at a time: the model must not care */

int main(void)
{
    static uint8_t image[MODEL_INPUT_BYTES], code[MODEL_PACKED_BYTES];
    if (device_half_init() != 0)
        return 2;
    while (fread(image, 1, sizeof image, stdin) == sizeof image) {
        device_half_begin(code);
        for (uint32_t row = 0; row < MODEL_INPUT_ROWS; row += CHUNK_ROWS) {
            const uint32_t n = MODEL_INPUT_ROWS - row < CHUNK_ROWS ? MODEL_INPUT_ROWS - row : CHUNK_ROWS;
            device_half_rows(image + row * MODEL_ROW_BYTES, n);
        }
        device_half_end();
        fwrite(code, 1, sizeof code, stdout);
    }
    return 0;
}
