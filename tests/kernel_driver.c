/* Test driver: runs the generated model on every image read from stdin, writes the codes to stdout. */
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

int main(void)
{
    static uint8_t image[MODEL_INPUT_BYTES], code[MODEL_CODE_BYTES];
    if (device_half_init() != 0)
        return 2;
    while (fread(image, 1, sizeof image, stdin) == sizeof image) {
        device_half_run(image, code);
        fwrite(code, 1, sizeof code, stdout);
    }
    return 0;
}
