/* Built for the host by `semhil build --backend nnom` before the firmware: initialises the NNoM
 * model in a large static buffer and prints the bytes NNoM took, which sizes the firmware's. */
#include <stdio.h>

#include "model.h"
#include "nnom.h"

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
    int status = device_half_init();
    if (status != 0) {
        fprintf(stderr, "NNoM model_compile failed with status -%d\n", status);
        return 1;
    }
    printf("%lu\n", (unsigned long)nnom_mem_stat());
    return 0;
}
