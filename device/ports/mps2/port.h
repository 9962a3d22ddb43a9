/* MPS2 (QEMU mps2-an500, Cortex-M7) port: the vector table size and CMSDK UART0's receive interrupt. */
#ifndef SEMHIL_PORT_H
#define SEMHIL_PORT_H

#define PORT_IRQ_COUNT 32
#define PORT_UART_IRQN 0 /* UART0 RX; its TX interrupt (1) stays off */

#endif
