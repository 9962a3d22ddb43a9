/* MPS2 family port: the 25 MHz SYSCLK is fixed (no PLL), CMSDK APB UART0 with a receive
 * interrupt, and no reset-cause register. */
#include "cortex_m.h"
#include "port.h"

#define UART0_DATA REG(0x40004000)
#define UART0_STATE REG(0x40004004)
#define UART0_CTRL REG(0x40004008)
#define UART0_INTCLEAR REG(0x4000400C)
#define UART0_BAUDDIV REG(0x40004010)

#define STATE_TX_FULL (1u << 0)
#define STATE_RX_FULL (1u << 1)
#define CTRL_TX_EN (1u << 0)
#define CTRL_RX_EN (1u << 1)
#define CTRL_RX_INT_EN (1u << 3)
#define INT_RX (1u << 1)

uint32_t port_clock_init(void)
{
    return BOARD_CORE_CLOCK_HZ;
}

void port_uart_init(uint32_t baud)
{
    UART0_BAUDDIV = BOARD_CORE_CLOCK_HZ / baud; /* at least 16, or the UART stays silent */
    UART0_CTRL = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INT_EN;
}

void port_uart_irq(void)
{
    UART0_INTCLEAR = INT_RX; /* first: a byte arriving during the loop raises the interrupt again */
    while (UART0_STATE & STATE_RX_FULL)
        cm_rx_push((uint8_t)UART0_DATA);
}

void port_uart_putc(uint8_t c)
{
    while (UART0_STATE & STATE_TX_FULL) {
    }
    UART0_DATA = c;
}

const char *port_reset_cause(void)
{
    return "unknown";
}
