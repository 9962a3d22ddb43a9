#include "stm32.h"

#include "cortex_m.h"

#define GPIO_MODER 0x00
#define GPIO_OSPEEDR 0x08
#define GPIO_PUPDR 0x0C
#define GPIO_AFR(pin) (0x20 + 4 * ((pin) / 8))

/* The USART of the F7 and H7 (on the H7 with its FIFO off: RXFNE, TXFNF, RXFNEIE sit at the bits
 * of RXNE, TXE, RXNEIE). The F4's older USART is in its own port. */
#define USART_CR1 0x00
#define USART_BRR 0x0C
#define USART_ISR 0x1C
#define USART_ICR 0x20
#define USART_RDR 0x24
#define USART_TDR 0x28
#define ISR_ORE (1u << 3)
#define ISR_RXNE (1u << 5)
#define ISR_TXE (1u << 7)
#define ICR_ORECF (1u << 3)
#define CR1_UE (1u << 0)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define CR1_RXNEIE (1u << 5)

static void pin_alternate(volatile uint32_t *gpio_enable, uint32_t gpioa_base, uint32_t port, uint32_t pin, int pull_up)
{
    *gpio_enable |= 1u << port;
    (void)*gpio_enable; /* the peripheral clock needs a moment after enabling */
    uint32_t base = gpioa_base + 0x400u * port;
    REG(base + GPIO_MODER) = (REG(base + GPIO_MODER) & ~(3u << 2 * pin)) | 2u << 2 * pin;
    REG(base + GPIO_OSPEEDR) |= 2u << 2 * pin;
    REG(base + GPIO_PUPDR) = (REG(base + GPIO_PUPDR) & ~(3u << 2 * pin)) | (pull_up ? 1u : 0u) << 2 * pin;
    REG(base + GPIO_AFR(pin)) = (REG(base + GPIO_AFR(pin)) & ~(0xFu << 4 * (pin % 8))) | 7u << 4 * (pin % 8);
}

void stm32_uart_pins(volatile uint32_t *gpio_enable, uint32_t gpioa_base)
{
    pin_alternate(gpio_enable, gpioa_base, BOARD_UART_TX_PORT, BOARD_UART_TX_PIN, 0);
    pin_alternate(gpio_enable, gpioa_base, BOARD_UART_RX_PORT, BOARD_UART_RX_PIN, 1); /* pull-up on RX */
}

uint32_t stm32_prescaler_bits(uint32_t div, uint32_t first)
{
    uint32_t bits = 0;
    while (div > 1) {
        div >>= 1;
        bits = bits ? bits + 1 : first;
    }
    return bits;
}

const char *stm32_reset_cause(uint32_t flags, const struct stm32_reset_flag *table, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (flags & table[i].mask)
            return table[i].name;
    return "unknown";
}

const char *stm32_csr_reset_cause(uint32_t csr)
{
    static const struct stm32_reset_flag flags[] = {
        {1u << 27, "power-on"},
        {1u << 25, "brown-out"},
        {1u << 29, "independent watchdog"},
        {1u << 30, "window watchdog"},
        {1u << 28, "software"},
        {1u << 31, "low-power"},
        {1u << 26, "reset pin"}, /* last: every internal reset also drives the pin */
    };
    return stm32_reset_cause(csr, flags, sizeof flags / sizeof flags[0]);
}

void stm32_usart_init(uint32_t base, uint32_t clock_hz, uint32_t baud)
{
    REG(base + USART_CR1) = 0;                             /* BRR is written with the USART disabled */
    REG(base + USART_BRR) = (clock_hz + baud / 2) / baud; /* 16x oversampling: BRR is the whole divisor */
    REG(base + USART_CR1) = CR1_UE | CR1_TE | CR1_RE | CR1_RXNEIE;
}

void stm32_usart_irq(uint32_t base)
{
    uint32_t isr = REG(base + USART_ISR);
    if (isr & ISR_RXNE)
        cm_rx_push((uint8_t)REG(base + USART_RDR)); /* reading RDR clears RXNE */
    if (isr & ISR_ORE)
        REG(base + USART_ICR) = ICR_ORECF; /* an overrun holds the interrupt (RXNEIE covers ORE) until cleared */
}

void stm32_usart_putc(uint32_t base, uint8_t c)
{
    while (!(REG(base + USART_ISR) & ISR_TXE)) {
    }
    REG(base + USART_TDR) = c;
}

#define CR_HSEON (1u << 16)
#define CR_HSERDY (1u << 17)
#define CR_HSEBYP (1u << 18)

int stm32_hse_start(volatile uint32_t *rcc_cr, int bypass)
{
    *rcc_cr |= bypass ? CR_HSEBYP : 0;
    *rcc_cr |= CR_HSEON;
    if (cm_wait(rcc_cr, CR_HSERDY, CR_HSERDY))
        return 1;
    *rcc_cr &= ~(CR_HSEON | CR_HSEBYP);
    return 0;
}
