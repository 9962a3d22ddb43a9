/* The registers the STM32F4 and F7 share (RM0090, RM0390, RM0385): RCC enables and reset flags,
 * GPIO ports, and the USART on the board's ST-LINK pins (BOARD_UART_INSTANCE n: USARTn). */
#ifndef SEMHIL_STM32_F4F7_H
#define SEMHIL_STM32_F4F7_H

#include "cortex_m.h"

#define RCC_AHB1ENR REG(0x40023830)
#define RCC_APB1ENR REG(0x40023840)
#define RCC_APB2ENR REG(0x40023844)
#define RCC_CSR REG(0x40023874)
#define GPIOA_BASE 0x40020000u
#define HSI_HZ 16000000u

#if BOARD_UART_INSTANCE == 1
#define USART_BASE 0x40011000u
#define USART_ENR RCC_APB2ENR
#define USART_ENR_BIT (1u << 4)
#define USART_ON_APB2 1
#elif BOARD_UART_INSTANCE == 2
#define USART_BASE 0x40004400u
#define USART_ENR RCC_APB1ENR
#define USART_ENR_BIT (1u << 17)
#define USART_ON_APB2 0
#else
#define USART_BASE 0x40004800u
#define USART_ENR RCC_APB1ENR
#define USART_ENR_BIT (1u << 18)
#define USART_ON_APB2 0
#endif

#endif
