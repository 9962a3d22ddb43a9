/* Test driver: runs the generated model on every image read from stdin, writes the codes to stdout. */
#include <stdio.h>

#include "model.h"

int main(void)
{
    static uint8_t image[MODEL_INPUT_BYTES], code[MODEL_CODE_BYTES];
    while (fread(image, 1, sizeof image, stdin) == sizeof image) {
        model_run(image, code);
        fwrite(code, 1, sizeof code, stdout);
    }
    return 0;
}
