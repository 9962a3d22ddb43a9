/* What the STM32 family ports share: the GPIO block, the bus prescaler encoding, the USART with
 * ISR/ICR/RDR/TDR registers (F7, H7), and the names of the reset flags. */
#ifndef SEMHIL_STM32_H
#define SEMHIL_STM32_H

#include <stdint.h>

struct stm32_reset_flag {
    uint32_t mask;
    const char *name;
};

/* The board's UART TX and RX pins (BOARD_UART_TX_*, BOARD_UART_RX_*) as AF7, the alternate function of
 * USART1-3 on every family: their GPIO ports clocked through gpio_enable (bit n: port n) and found at
 * gpioa_base + 0x400 * n. */
void stm32_uart_pins(volatile uint32_t *gpio_enable, uint32_t gpioa_base);
/* HPRE/PPRE field of a divider: 1 -> 0, 2 -> first, 4 -> first + 1, ... */
uint32_t stm32_prescaler_bits(uint32_t div, uint32_t first);
/* The name of the first flag set in a table ordered by priority, or "unknown". */
const char *stm32_reset_cause(uint32_t flags, const struct stm32_reset_flag *table, uint32_t n);
/* RCC_CSR's reset flags (bits 25-31), laid out alike on the F4 and F7. */
const char *stm32_csr_reset_cause(uint32_t csr);

/* F4 and F7 (stm32/rcc_f4f7.c): makes BOARD_CORE_CLOCK_HZ with the board's plan, flash_acr_bits set
 * beside the wait states; returns the core clock reached (the 16 MHz HSI if a step failed). */
uint32_t stm32_f4f7_clock_init(uint32_t flash_acr_bits);
/* The clock of the board's USART's bus once the core runs at core_hz. */
uint32_t stm32_f4f7_uart_clock_hz(uint32_t core_hz);

/* Starts the HSE (bypassed: an external clock such as the ST-LINK's, when bypass) through RCC_CR at
 * rcc_cr, whose HSEON/HSERDY/HSEBYP bits sit alike on the F4, F7 and H7; 0 if no oscillator answers
 * (HSE then off again). */
int stm32_hse_start(volatile uint32_t *rcc_cr, int bypass);

void stm32_usart_init(uint32_t base, uint32_t clock_hz, uint32_t baud);
void stm32_usart_irq(uint32_t base);
void stm32_usart_putc(uint32_t base, uint8_t c);

#endif
