/* STM32H7 port: the vector table size and the board's UART (BOARD_UART_INSTANCE = n for USARTn). */
#ifndef SEMHIL_PORT_H
#define SEMHIL_PORT_H

#define PORT_IRQ_COUNT 150 /* STM32H743/H750: the last is the wake-up pins' (149) */
#define PORT_UART_IRQN (BOARD_UART_INSTANCE == 1 ? 37 : BOARD_UART_INSTANCE == 2 ? 38 : 39)

#endif
