/* th_port.h for every Cortex-M board: clock and UART through the family port, a 64-bit tick counter
 * (DWT cycles on silicon, SysTick under QEMU, which has no DWT), I- and D-cache on the Cortex-M7,
 * stack peak by painting, a ring buffer between the UART interrupt and the core loop. */
#include "cortex_m.h"
#include "port.h"
#include "th_port.h"

#define NVIC_ISER(n) REG(0xE000E100 + 4 * (n))
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define SYST_CVR REG(0xE000E018)
#define SCB_ICSR REG(0xE000ED04)
#define SCB_CCR REG(0xE000ED14)
#define SCB_CCSIDR REG(0xE000ED80)
#define SCB_CSSELR REG(0xE000ED84)
#define SCB_ICIALLU REG(0xE000EF50)
#define SCB_DCISW REG(0xE000EF60)
#define DEMCR REG(0xE000EDFC)
#define DWT_CTRL REG(0xE0001000)
#define DWT_CYCCNT REG(0xE0001004)
#define DWT_LAR REG(0xE0001FB0)

#define ICSR_PENDSTSET (1u << 26)
#define CCR_DC (1u << 16)
#define CCR_IC (1u << 17)
#define STACK_PAINT 0xC0DEC0DEu
#define PAINT_MARGIN 64u /* bytes below SP left alone while painting */

extern uint32_t _sstack[], _estack[]; /* the stack region, from the linker script */

static volatile uint8_t rx_ring[512];
static volatile uint32_t rx_head, rx_tail; /* head written by the interrupt, tail by the loop */
static volatile uint32_t systick_wraps;
static uint32_t core_clock_hz;
static const char *reset_cause = "unknown";

void cm_rx_push(uint8_t c)
{
    if (rx_head - rx_tail < sizeof rx_ring) { /* else dropped: the frame will fail its CRC */
        rx_ring[rx_head % sizeof rx_ring] = c;
        rx_head++;
    }
}

int cm_wait(volatile uint32_t *reg, uint32_t mask, uint32_t value)
{
    for (uint32_t n = 0; n < 1000000u; n++)
        if ((*reg & mask) == value)
            return 1;
    return 0;
}

#if BOARD_CORE_M7
static void enable_caches(void)
{
    __asm volatile("dsb\n isb" ::: "memory");
    SCB_ICIALLU = 0;
    SCB_CSSELR = 0; /* level 1 data cache */
    __asm volatile("dsb" ::: "memory");
    uint32_t ccsidr = SCB_CCSIDR;
    uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1, ways = ((ccsidr >> 3) & 0x3FFu) + 1;
    for (uint32_t set = 0; set < sets; set++)
        for (uint32_t way = 0; way < ways; way++)
            SCB_DCISW = (set << 5) | (way << 30); /* 32-byte lines, 4 ways on the M7 */
    __asm volatile("dsb" ::: "memory");
    SCB_CCR |= CCR_IC | CCR_DC;
    __asm volatile("dsb\n isb" ::: "memory");
}
#endif

/* SysTick runs on the core clock in both modes: it is the tick counter under QEMU, and on silicon
 * its wraps (every 2^24 cycles) extend the 32-bit DWT counter to 64 bits. */
#if BOARD_TIMER_DWT
static volatile uint32_t cyccnt_high, cyccnt_last;

static uint64_t extend_cyccnt(void)
{
    uint32_t now = DWT_CYCCNT;
    if (now < cyccnt_last)
        cyccnt_high++;
    cyccnt_last = now;
    return ((uint64_t)cyccnt_high << 32) | now;
}
#endif

void SysTick_Handler(void)
{
#if BOARD_TIMER_DWT
    extend_cyccnt();
#else
    systick_wraps++;
#endif
}

void th_init(void)
{
    reset_cause = port_reset_cause();
#if BOARD_CORE_M7
    enable_caches();
#endif
    core_clock_hz = port_clock_init();
    port_uart_init(BOARD_UART_BAUD);
    NVIC_ISER(PORT_UART_IRQN / 32) = 1u << (PORT_UART_IRQN % 32);
#if BOARD_TIMER_DWT
    DEMCR |= 1u << 24;   /* TRCENA */
    DWT_LAR = 0xC5ACCE55; /* unlock (Cortex-M7) */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;      /* CYCCNTENA */
#endif
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
    while (n--)
        port_uart_putc(*buf++);
}

uint64_t th_timer_ticks(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
#if BOARD_TIMER_DWT
    uint64_t ticks = extend_cyccnt();
#else
    uint32_t wraps = systick_wraps, left = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) { /* wrapped, handler not run yet */
        wraps++;
        left = SYST_CVR;
    }
    uint64_t ticks = ((uint64_t)wraps << 24) + (0xFFFFFFu - left);
#endif
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
    return ticks;
}

uint32_t th_timer_hz(void)
{
    return core_clock_hz;
}

uint32_t th_core_clock_hz(void)
{
    return core_clock_hz;
}

const char *th_reset_cause(void)
{
    return reset_cause;
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
