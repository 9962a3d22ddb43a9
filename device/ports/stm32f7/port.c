/* STM32F7 family port (RM0385): PLL from the board's oscillator with over-drive where the clock
 * needs it, USART1/2/3 on the board's pins (AF7) with a receive interrupt, reset cause from RCC_CSR.
 * An oscillator, PLL or regulator that does not come up leaves the board on the 16 MHz HSI it reset
 * to, and the UART's divisor follows the clock that really runs. */
#include "cortex_m.h"
#include "f4f7.h"
#include "port.h"
#include "stm32.h"

/* The USART's kernel clock is its APB clock (RCC_DCKCFGR2 USARTnSEL = 0, the reset value). */


static uint32_t uart_clock_hz = HSI_HZ; /* the UART's bus clock: HSI until the PLL runs */

uint32_t port_clock_init(void)
{
    uint32_t core_hz = stm32_f4f7_clock_init(3u << 8); /* PRFTEN, ARTEN */
    uart_clock_hz = stm32_f4f7_uart_clock_hz(core_hz);
    return core_hz;
}

void port_uart_init(uint32_t baud)
{
    stm32_uart_pins(&RCC_AHB1ENR, GPIOA_BASE);
    USART_ENR |= USART_ENR_BIT;
    (void)USART_ENR;
    stm32_usart_init(USART_BASE, uart_clock_hz, baud);
}

void port_uart_irq(void)
{
    stm32_usart_irq(USART_BASE);
}

void port_uart_putc(uint8_t c)
{
    stm32_usart_putc(USART_BASE, c);
}

const char *port_reset_cause(void)
{
    uint32_t csr = RCC_CSR;
    RCC_CSR |= 1u << 24; /* RMVF: clear the flags for the next reset */
    return stm32_csr_reset_cause(csr);
}
