/* NNoM's clock on the board's timer, so that layer_run() and model_stat() time each layer. */
#include "nnom_port.h"
#include "th_port.h"

uint32_t semhil_nnom_us(void)
{
    return (uint32_t)(th_timer_ticks() * 1000000u / th_timer_hz());
}
