/* STM32H7 family port (RM0433; STM32H743/H750, LDO supply): voltage scale 1, PLL1 from the board's
 * oscillator (the core at SYSCLK, the AXI/AHB buses at SYSCLK / BOARD_AHB_DIV), USART1/2/3 on the
 * board's pins (AF7) with a receive interrupt, reset cause from RCC_RSR. An oscillator, PLL or
 * regulator that does not come up leaves the board on the 64 MHz HSI it reset to, and the UART's
 * divisor follows the clock that really runs. */
#include "cortex_m.h"
#include "port.h"
#include "stm32.h"

#define RCC_CR REG(0x58024400)
#define RCC_CFGR REG(0x58024410)
#define RCC_D1CFGR REG(0x58024418)
#define RCC_D2CFGR REG(0x5802441C)
#define RCC_D3CFGR REG(0x58024420)
#define RCC_PLLCKSELR REG(0x58024428)
#define RCC_PLLCFGR REG(0x5802442C)
#define RCC_PLL1DIVR REG(0x58024430)
#define RCC_RSR REG(0x580244D0)
#define RCC_AHB4ENR REG(0x580244E0)
#define RCC_APB1LENR REG(0x580244E8)
#define RCC_APB2ENR REG(0x580244F0)
#define PWR_CSR1 REG(0x58024804)
#define PWR_CR3 REG(0x5802480C)
#define PWR_D3CR REG(0x58024818)
#define FLASH_ACR REG(0x52002000)
#define GPIOA_BASE 0x58020000u

#if BOARD_UART_INSTANCE == 1
#define USART_BASE 0x40011000u
#define USART_ENR RCC_APB2ENR
#define USART_ENR_BIT (1u << 4)
#define USART_ON_APB2 1
#elif BOARD_UART_INSTANCE == 2
#define USART_BASE 0x40004400u
#define USART_ENR RCC_APB1LENR
#define USART_ENR_BIT (1u << 17)
#define USART_ON_APB2 0
#else
#define USART_BASE 0x40004800u
#define USART_ENR RCC_APB1LENR
#define USART_ENR_BIT (1u << 18)
#define USART_ON_APB2 0
#endif
/* The USART's kernel clock is its APB clock (RCC_D2CCIP2R USART16SEL / USART28SEL = 0, the reset
 * value) and its prescaler (USART_PRESC) is 1. The FIFO stays off (CR1 FIFOEN = 0): RXFNE, TXFNF and
 * RXFNEIE then are the RXNE, TXE and RXNEIE of the F7's USART, at the same bits. */

#define CR_PLL1ON (1u << 24)
#define CR_PLL1RDY (1u << 25)
#define CFGR_SW 7u
#define CFGR_SW_PLL1 3u
#define CFGR_SWS (7u << 3)
#define CFGR_SWS_PLL1 (3u << 3)
#define PLLCKSELR_PLLSRC 3u
#define PLLCKSELR_PLLSRC_HSE 2u /* 0: HSI */
#define PLLCKSELR_DIVM1 (0x3Fu << 4)
#define PLLCFGR_PLL1 0xFu /* PLL1FRACEN, PLL1VCOSEL (0: wide VCO), PLL1RGE */
#define PLLCFGR_DIVP1EN (1u << 16)
#define PLL1DIVR_R1 (0x7Fu << 24)
#define PWR_CR3_SUPPLY 7u /* BYPASS, LDOEN, SCUEN */
#define PWR_CR3_LDOEN (1u << 1)
#define PWR_CSR1_ACTVOSRDY (1u << 13)
#define PWR_D3CR_VOS (3u << 14)
#define PWR_D3CR_VOS_SCALE1 (3u << 14)
#define PWR_D3CR_VOSRDY (1u << 13)
#define ACR_WAITS 0x3Fu /* LATENCY, WRHIGHFREQ */
#define RSR_RMVF (1u << 16)
#define HSI_HZ 64000000u

/* PLL1RGE: the range of the PLL's input after DIVM1 (1-2, 2-4, 4-8, 8-16 MHz). */
#define PLL1_INPUT_HZ (BOARD_PLL_INPUT_HZ / (BOARD_PLL_M ? BOARD_PLL_M : 1))
#define PLL1_RANGE (PLL1_INPUT_HZ >= 8000000 ? 3u : PLL1_INPUT_HZ >= 4000000 ? 2u : PLL1_INPUT_HZ >= 2000000 ? 1u : 0u)

static uint32_t uart_clock_hz = HSI_HZ; /* the UART's bus clock: HSI until the PLL runs */

/* The reset clock: SYSCLK on the HSI, every prescaler 1, PLL1 off. Where the clock set-up starts (a
 * debugger may have left PLL1 running) and where a failed step leaves it. */
static uint32_t __attribute__((unused)) run_on_hsi(void)
{
    RCC_CFGR &= ~CFGR_SW;
    cm_wait(&RCC_CFGR, CFGR_SWS, 0);
    RCC_D1CFGR = 0; /* only once off PLL1: undivided, the buses would be too fast */
    RCC_D2CFGR = 0;
    RCC_D3CFGR = 0;
    RCC_CR &= ~CR_PLL1ON;
    cm_wait(&RCC_CR, CR_PLL1RDY, 0);
    uart_clock_hz = HSI_HZ;
    return HSI_HZ; /* INFO reports the 64 MHz the board really runs at */
}

uint32_t port_clock_init(void)
{
#if !BOARD_CLOCK_SETUP
    return BOARD_CORE_CLOCK_HZ;
#else
    run_on_hsi();
    /* Supply from the LDO (both boards' wiring). The supply bits take one write per power-on (SCUEN
     * locks them): a second one, after a system reset, changes nothing and the first one stays. */
    PWR_CR3 = (PWR_CR3 & ~PWR_CR3_SUPPLY) | PWR_CR3_LDOEN;
    if (!cm_wait(&PWR_CSR1, PWR_CSR1_ACTVOSRDY, PWR_CSR1_ACTVOSRDY))
        return run_on_hsi();
    PWR_D3CR = (PWR_D3CR & ~PWR_D3CR_VOS) | PWR_D3CR_VOS_SCALE1; /* 400 MHz needs scale 1 (reset: scale 3) */
    (void)PWR_D3CR;
    if (!cm_wait(&PWR_D3CR, PWR_D3CR_VOSRDY, PWR_D3CR_VOSRDY))
        return run_on_hsi();
    /* Wait states for the AXI clock (HCLK) before it rises; also enough for the 64 MHz HSI. */
    FLASH_ACR = (FLASH_ACR & ~ACR_WAITS) | BOARD_FLASH_LATENCY | BOARD_FLASH_WRHIGHFREQ << 4;
    if (!cm_wait(&FLASH_ACR, ACR_WAITS, BOARD_FLASH_LATENCY | BOARD_FLASH_WRHIGHFREQ << 4))
        return run_on_hsi();
    uint32_t source = 0; /* HSI */
#if BOARD_CLOCK_HSE
    if (!stm32_hse_start(&RCC_CR, BOARD_HSE_BYPASS))
        return run_on_hsi(); /* no oscillator */
    source = PLLCKSELR_PLLSRC_HSE;
#endif
    RCC_PLLCKSELR = (RCC_PLLCKSELR & ~(PLLCKSELR_DIVM1 | PLLCKSELR_PLLSRC)) | BOARD_PLL_M << 4 | source;
    RCC_PLLCFGR = (RCC_PLLCFGR & ~PLLCFGR_PLL1) | PLL1_RANGE << 2 | PLLCFGR_DIVP1EN; /* integer mode, wide VCO */
    RCC_PLL1DIVR = (RCC_PLL1DIVR & PLL1DIVR_R1) | (BOARD_PLL_N - 1) | (BOARD_PLL_P - 1) << 9 | (BOARD_PLL_Q - 1) << 16;
    RCC_CR |= CR_PLL1ON;
    if (!cm_wait(&RCC_CR, CR_PLL1RDY, CR_PLL1RDY))
        return run_on_hsi();
    /* The core at SYSCLK (D1CPRE 1), AXI/AHB at SYSCLK / BOARD_AHB_DIV, APB1 (USART2/3), APB3 and APB4
     * at HCLK / BOARD_APB1_DIV, APB2 (USART1) at HCLK / BOARD_APB2_DIV. */
    RCC_D1CFGR = stm32_prescaler_bits(BOARD_AHB_DIV, 8) | stm32_prescaler_bits(BOARD_APB1_DIV, 4) << 4;
    RCC_D2CFGR = stm32_prescaler_bits(BOARD_APB1_DIV, 4) << 4 | stm32_prescaler_bits(BOARD_APB2_DIV, 4) << 8;
    RCC_D3CFGR = stm32_prescaler_bits(BOARD_APB1_DIV, 4) << 4;
    RCC_CFGR = (RCC_CFGR & ~CFGR_SW) | CFGR_SW_PLL1;
    if (!cm_wait(&RCC_CFGR, CFGR_SWS, CFGR_SWS_PLL1))
        return run_on_hsi();
    uint32_t hclk = BOARD_CORE_CLOCK_HZ / BOARD_AHB_DIV;
    uart_clock_hz = hclk / (USART_ON_APB2 ? BOARD_APB2_DIV : BOARD_APB1_DIV);
    return BOARD_CORE_CLOCK_HZ;
#endif
}

void port_uart_init(uint32_t baud)
{
    stm32_uart_pins(&RCC_AHB4ENR, GPIOA_BASE);
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
    static const struct stm32_reset_flag flags[] = {
        {1u << 23, "power-on"},
        {1u << 21, "brown-out"},
        {1u << 26, "independent watchdog"},
        {1u << 28, "window watchdog"},
        {1u << 24, "software"},
        {1u << 30, "low-power"},
        {3u << 19, "standby exit"}, /* D1RSTF, D2RSTF: a domain left DStandby */
        {1u << 22, "reset pin"},    /* last: every internal reset also drives the pin */
    };
    uint32_t rsr = RCC_RSR;
    RCC_RSR |= RSR_RMVF;  /* clear the flags for the next reset; RM0433 has software set and reset */
    RCC_RSR &= ~RSR_RMVF; /* RMVF, so it is released for the flags to latch again */
    return stm32_reset_cause(rsr, flags, sizeof flags / sizeof flags[0]);
}
