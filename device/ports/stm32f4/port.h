/* STM32F4 port: the vector table size and the board's UART (BOARD_UART_INSTANCE = n for USARTn). */
#ifndef SEMHIL_PORT_H
#define SEMHIL_PORT_H

#define PORT_IRQ_COUNT 97 /* STM32F446; the F405's 82 fit in it */
#define PORT_UART_IRQN (BOARD_UART_INSTANCE == 1 ? 37 : BOARD_UART_INSTANCE == 2 ? 38 : 39)

#endif
