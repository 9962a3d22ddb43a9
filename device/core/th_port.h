/* The porting layer, MLPerf-Tiny style: the core calls only these. One implementation per board
 * family lives in device/ports/<family>/
 * (on Cortex-M boards: the shared device/ports/cortex-m/ over a small family port). */
#ifndef SEMHIL_TH_PORT_H
#define SEMHIL_TH_PORT_H

#include <stdint.h>

/* The storage class of the core's and the model's mutable state: static in a firmware. A MicroPython
 * native module (SEMHIL_NATMOD) defines it empty: its linker (mpy_ld) cannot address static bss on x64. */
#ifdef SEMHIL_NATMOD
#define SEMHIL_STATIC
#else
#define SEMHIL_STATIC static
#endif

void th_init(void);                        /* clocks, FPU, UART, timer */
int th_uart_read_byte(void);               /* blocking, returns 0..255 */
void th_uart_write(const uint8_t *buf, uint32_t n);
uint64_t th_timer_ticks(void);             /* free-running, monotonic */
uint32_t th_timer_hz(void);                /* tick rate */
uint32_t th_core_clock_hz(void);           /* 0 when unknown */
uint32_t th_stack_bytes(void);             /* size of the stack region used for inference */
/* Runs fn(arg) and returns the peak stack bytes fn used, measured by painting the stack. */
uint32_t th_run_measuring_stack(void (*fn)(void *), void *arg);
const char *th_board_name(void);           /* BOARD_NAME */
const char *th_reset_cause(void);          /* why the board last started: power-on, pin, software, watchdog, ... */

#endif
