/* Clock set-up of the STM32F4 and F7, whose RCC, flash interface and over-drive registers share
 * one layout (RM0090, RM0390, RM0385): PLL from the board's oscillator, over-drive where the clock
 * needs it. The voltage scale stays at its reset value, scale 1 on both. */
#include "cortex_m.h"
#include "f4f7.h"
#include "stm32.h"

#define RCC_CR REG(0x40023800)
#define RCC_PLLCFGR REG(0x40023804)
#define RCC_CFGR REG(0x40023808)
#define FLASH_ACR REG(0x40023C00)
#define PWR_CR REG(0x40007000)
#define PWR_CSR REG(0x40007004)

#define CR_PLLON (1u << 24)
#define CR_PLLRDY (1u << 25)
#define PLLCFGR_PLLSRC_HSE (1u << 22)
#define CFGR_SW 3u
#define CFGR_SW_PLL 2u
#define CFGR_SWS (3u << 2)
#define CFGR_SWS_PLL (2u << 2)
#define CFGR_PRESCALERS (0xFu << 4 | 0x3Fu << 10) /* HPRE, PPRE1, PPRE2 */
#define APB1ENR_PWREN (1u << 28)
#define PWR_CR_ODEN (1u << 16)
#define PWR_CR_ODSWEN (1u << 17)
#define PWR_CSR_ODRDY (1u << 16)
#define PWR_CSR_ODSWRDY (1u << 17)
#define ACR_LATENCY 0xFu

/* The reset clock: SYSCLK on the HSI, buses undivided, PLL off. Where the clock set-up starts (a
 * debugger's reset-init script may have left the PLL running) and where a failed step leaves it. */
static uint32_t __attribute__((unused)) run_on_hsi(void)
{
    RCC_CFGR &= ~CFGR_SW;
    cm_wait(&RCC_CFGR, CFGR_SWS, 0);
    RCC_CFGR &= ~CFGR_PRESCALERS; /* only once off the PLL: undivided, the APB buses would be too fast */
    RCC_CR &= ~CR_PLLON;
    cm_wait(&RCC_CR, CR_PLLRDY, 0);
    return HSI_HZ; /* INFO reports the 16 MHz the board really runs at */
}

uint32_t stm32_f4f7_clock_init(uint32_t flash_acr_bits)
{
#if !BOARD_CLOCK_SETUP
    (void)flash_acr_bits;
    return BOARD_CORE_CLOCK_HZ;
#else
    RCC_APB1ENR |= APB1ENR_PWREN;
    (void)RCC_APB1ENR; /* the peripheral clock needs a moment after enabling */
    run_on_hsi();
    FLASH_ACR = BOARD_FLASH_LATENCY | flash_acr_bits; /* wait states before the clock rises */
    if (!cm_wait(&FLASH_ACR, ACR_LATENCY, BOARD_FLASH_LATENCY))
        return run_on_hsi();
    uint32_t source = 0; /* HSI */
#if BOARD_CLOCK_HSE
    if (!stm32_hse_start(&RCC_CR, BOARD_HSE_BYPASS))
        return run_on_hsi(); /* no oscillator */
    source = PLLCFGR_PLLSRC_HSE;
#endif
    /* Bits 31:28: PLLR on the F446 and F76x, reserved on the F405 and F746: kept. */
    RCC_PLLCFGR = (RCC_PLLCFGR & 0xF0000000u) | BOARD_PLL_M | BOARD_PLL_N << 6 | (BOARD_PLL_P / 2 - 1) << 16 | source |
                  BOARD_PLL_Q << 24;
    RCC_CR |= CR_PLLON;
    if (!cm_wait(&RCC_CR, CR_PLLRDY, CR_PLLRDY))
        return run_on_hsi();
#if BOARD_OVERDRIVE
    PWR_CR |= PWR_CR_ODEN; /* with the PLL on and SYSCLK still on the HSI, as RM0390 and RM0385 ask */
    if (!cm_wait(&PWR_CSR, PWR_CSR_ODRDY, PWR_CSR_ODRDY))
        return run_on_hsi();
    PWR_CR |= PWR_CR_ODSWEN;
    if (!cm_wait(&PWR_CSR, PWR_CSR_ODSWRDY, PWR_CSR_ODSWRDY))
        return run_on_hsi();
#endif
    RCC_CFGR = (RCC_CFGR & ~CFGR_PRESCALERS) | stm32_prescaler_bits(BOARD_AHB_DIV, 8) << 4 |
               stm32_prescaler_bits(BOARD_APB1_DIV, 4) << 10 | stm32_prescaler_bits(BOARD_APB2_DIV, 4) << 13;
    RCC_CFGR = (RCC_CFGR & ~CFGR_SW) | CFGR_SW_PLL;
    if (!cm_wait(&RCC_CFGR, CFGR_SWS, CFGR_SWS_PLL))
        return run_on_hsi();
    return BOARD_CORE_CLOCK_HZ;
#endif
}

uint32_t stm32_f4f7_uart_clock_hz(uint32_t core_hz)
{
    if (!BOARD_CLOCK_SETUP || core_hz != BOARD_CORE_CLOCK_HZ)
        return HSI_HZ; /* emulated (the divisor does not matter), or the plan failed */
    return BOARD_CORE_CLOCK_HZ / BOARD_AHB_DIV / (USART_ON_APB2 ? BOARD_APB2_DIV : BOARD_APB1_DIV);
}
