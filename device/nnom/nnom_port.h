/* semhil's configuration of NNoM (found at NNOM_HOME; this header replaces its port/nnom_port.h).
 * Static memory only, the clock from the board's timer, logs to stderr on the host and nowhere
 * on a microcontroller (no printf in the firmware). */
#ifndef __NNOM_PORT_H__
#define __NNOM_PORT_H__

#include <stdint.h>
#include <string.h>

#define NNOM_USING_STATIC_MEMORY

#define nnom_memset(p, v, s) memset(p, v, s)
#define nnom_memcpy(dst, src, len) memcpy(dst, src, len)

uint32_t semhil_nnom_us(void); /* microseconds from th_timer_ticks(), see nnom_port.c */
#define nnom_us_get() semhil_nnom_us()
#define nnom_ms_get() (semhil_nnom_us() / 1000u)

#ifdef SEMHIL_NNOM_LOG_STDERR
#include <stdio.h>
#define NNOM_LOG(...) fprintf(stderr, __VA_ARGS__)
#else
#define NNOM_LOG(...) ((void)0)
#endif

#define NNOM_BLOCK_NUM (8)
#define DENSE_WEIGHT_OPT (1)

#endif
