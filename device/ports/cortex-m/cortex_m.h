/* The shared Cortex-M layer (cortex_m.c) implements th_port.h on top of these few functions,
 * which each family port (device/ports/<family>/port.c) provides. The board's figures come from
 * the generated board_config.h (BOARD_* macros, see device/ports/README.md). */
#ifndef SEMHIL_CORTEX_M_H
#define SEMHIL_CORTEX_M_H

#include <stdint.h>

#include "board_config.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

/* Port -> shared layer */
uint32_t port_clock_init(void);       /* makes the board's clock; returns the core clock it runs at */
void port_uart_init(uint32_t baud);   /* the UART on the board's pins, receive interrupt on */
void port_uart_putc(uint8_t c);       /* blocking */
void port_uart_irq(void);             /* the UART's interrupt handler: hands each byte to cm_rx_push */
const char *port_reset_cause(void);   /* reads, then clears, the reset flags */

/* Shared layer -> port */
void cm_rx_push(uint8_t c);           /* from the UART interrupt */

/* 1 once (*reg & mask) == value, 0 if that did not happen within about a million reads
 * (a missing crystal must not hang the board). */
int cm_wait(volatile uint32_t *reg, uint32_t mask, uint32_t value);

#endif
