/* STM32F4 bare-metal port: USART1 on PA9/PA10 with an RX interrupt, SysTick as a 64-bit
 * tick counter on the core clock, stack peak by painting the stack region below SP. */
#include <stdint.h>

#include "th_port.h"

#ifndef BOARD_NAME
#define BOARD_NAME "stm32f4"
#endif

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCC_AHB1ENR REG(0x40023830)
#define RCC_APB2ENR REG(0x40023844)
#define GPIOA_MODER REG(0x40020000)
#define GPIOA_PUPDR REG(0x4002000C)
#define GPIOA_AFRH REG(0x40020024)
#define USART1_SR REG(0x40011000)
#define USART1_DR REG(0x40011004)
#define USART1_BRR REG(0x40011008)
#define USART1_CR1 REG(0x4001100C)
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define SYST_CVR REG(0xE000E018)
#define SCB_ICSR REG(0xE000ED04)
#define NVIC_ISER1 REG(0xE000E104)

#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_UE (1u << 13)
#define CR1_RXNEIE (1u << 5)
#define CR1_TE (1u << 3)
#define CR1_RE (1u << 2)
#define ICSR_PENDSTSET (1u << 26)
#define USART1_IRQN 37

/* The 168 MHz SYSCLK that QEMU's netduinoplus2 models; SysTick counts it. On silicon the chip
 * stays on the 16 MHz HSI because the PLL is not set up yet (a later issue), so this figure
 * and the baud rate divisor below must be revisited together with the PLL set-up. */
#define CORE_CLOCK_HZ 168000000u
#define APB2_CLOCK_HZ 16000000u /* HSI, AHB and APB2 prescalers 1, as after reset */
#define BAUD 115200u

#define STACK_PAINT 0xC0DEC0DEu
#define PAINT_MARGIN 64u /* bytes below SP left alone while painting */

extern uint32_t _sstack[], _estack[]; /* the stack region, from the linker script */

static volatile uint8_t rx_ring[512];
static volatile uint32_t rx_head, rx_tail; /* head written by the interrupt, tail by the loop */
static volatile uint32_t systick_wraps;

void USART1_IRQHandler(void)
{
    (void)USART1_SR; /* reading SR then DR clears RXNE and an overrun */
    uint8_t c = (uint8_t)USART1_DR;
    if (rx_head - rx_tail < sizeof rx_ring) { /* else dropped: the frame will fail its CRC */
        rx_ring[rx_head % sizeof rx_ring] = c;
        rx_head++;
    }
}

void SysTick_Handler(void)
{
    systick_wraps++;
}

void th_init(void)
{
    RCC_AHB1ENR |= 1u << 0; /* GPIOA */
    RCC_APB2ENR |= 1u << 4; /* USART1 */
    (void)RCC_APB2ENR;      /* the peripheral clock needs a moment after enabling */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 18)) | (0xAu << 18); /* PA9, PA10: alternate function */
    GPIOA_AFRH = (GPIOA_AFRH & ~(0xFFu << 4)) | (0x77u << 4);   /* AF7: USART1 TX, RX */
    GPIOA_PUPDR = (GPIOA_PUPDR & ~(0x3u << 20)) | (0x1u << 20); /* pull-up on RX */
    USART1_BRR = (APB2_CLOCK_HZ + BAUD / 2) / BAUD;             /* 16x oversampling */
    USART1_CR1 = CR1_UE | CR1_TE | CR1_RE | CR1_RXNEIE;
    NVIC_ISER1 = 1u << (USART1_IRQN - 32);

    SYST_RVR = 0xFFFFFF;
    SYST_CVR = 0;
    SYST_CSR = 7; /* processor clock, interrupt on wrap, enable */
}

int th_uart_read_byte(void)
{
    while (rx_head == rx_tail) {
        /* WFI wakes on a pending interrupt even with PRIMASK set, so no byte slips past. */
        __asm volatile("cpsid i" ::: "memory");
        if (rx_head == rx_tail)
            __asm volatile("wfi");
        __asm volatile("cpsie i" ::: "memory");
    }
    uint8_t c = rx_ring[rx_tail % sizeof rx_ring];
    rx_tail++;
    return c;
}

void th_uart_write(const uint8_t *buf, uint32_t n)
{
    while (n--) {
        while (!(USART1_SR & SR_TXE)) {
        }
        USART1_DR = *buf++;
    }
}

uint64_t th_timer_ticks(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    uint32_t wraps = systick_wraps, left = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) { /* wrapped, handler not run yet */
        wraps++;
        left = SYST_CVR;
    }
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
    return ((uint64_t)wraps << 24) + (0xFFFFFFu - left);
}

uint32_t th_timer_hz(void)
{
    return CORE_CLOCK_HZ;
}

uint32_t th_core_clock_hz(void)
{
    return CORE_CLOCK_HZ;
}

uint32_t th_stack_bytes(void)
{
    return (uint32_t)((uintptr_t)_estack - (uintptr_t)_sstack);
}

uint32_t th_run_measuring_stack(void (*fn)(void *), void *arg)
{
    uint32_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    uint32_t *top = (uint32_t *)((sp - PAINT_MARGIN) & ~3u);
    for (uint32_t *p = _sstack; p < top; p++)
        *p = STACK_PAINT;
    fn(arg);
    uint32_t *p = _sstack;
    while (p < top && *p == STACK_PAINT)
        p++;
    return sp - (uint32_t)(uintptr_t)p;
}

const char *th_board_name(void)
{
    return BOARD_NAME;
}
