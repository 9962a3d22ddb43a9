/* STM32F4 family port (RM0090, RM0390): PLL from the board's oscillator with over-drive where the
 * clock needs it, USART1/2/3 on the board's pins (AF7) with a receive interrupt, reset cause from
 * RCC_CSR. Under QEMU (BOARD_CLOCK_SETUP 0) the clock is left as the emulator models it. */
#include "cortex_m.h"
#include "f4f7.h"
#include "port.h"
#include "stm32.h"

#define USART_SR REG(USART_BASE + 0x00)
#define USART_DR REG(USART_BASE + 0x04)
#define USART_BRR REG(USART_BASE + 0x08)
#define USART_CR1 REG(USART_BASE + 0x0C)

#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_UE (1u << 13)
#define CR1_RXNEIE (1u << 5)
#define CR1_TE (1u << 3)
#define CR1_RE (1u << 2)

static uint32_t uart_clock_hz = HSI_HZ; /* the UART's bus clock: HSI until the PLL runs */

uint32_t port_clock_init(void)
{
    uint32_t core_hz = stm32_f4f7_clock_init(7u << 8); /* PRFTEN, ICEN, DCEN */
    uart_clock_hz = stm32_f4f7_uart_clock_hz(core_hz);
    return core_hz;
}

void port_uart_init(uint32_t baud)
{
    stm32_uart_pins(&RCC_AHB1ENR, GPIOA_BASE);
    USART_ENR |= USART_ENR_BIT;
    (void)USART_ENR;
    USART_CR1 = 0;                                 /* BRR is written with the USART disabled */
    USART_BRR = (uart_clock_hz + baud / 2) / baud; /* 16x oversampling */
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE | CR1_RXNEIE;
}

void port_uart_irq(void)
{
    uint32_t sr = USART_SR; /* reading SR then DR clears RXNE and an overrun */
    uint8_t c = (uint8_t)USART_DR;
    if (sr & SR_RXNE)
        cm_rx_push(c);
}

void port_uart_putc(uint8_t c)
{
    while (!(USART_SR & SR_TXE)) {
    }
    USART_DR = c;
}

const char *port_reset_cause(void)
{
    uint32_t csr = RCC_CSR;
    RCC_CSR |= 1u << 24; /* RMVF: clear the flags for the next reset */
    return stm32_csr_reset_cause(csr);
}
