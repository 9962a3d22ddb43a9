/* Cortex-M start-up: vector table (the family's port.h gives its size and the UART's interrupt),
 * reset handler, and the newlib system call stubs (the firmware itself uses no stdio or malloc;
 * these only keep a stray call linkable). */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#include "cortex_m.h"
#include "port.h" /* PORT_IRQ_COUNT, PORT_UART_IRQN */

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88)

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[];
int main(void);

void Reset_Handler(void)
{
    SCB_CPACR |= 0xFu << 20; /* CP10, CP11 full access: the FPU, before any float code */
    __asm volatile("dsb\n isb" ::: "memory");
    for (uint32_t *src = _sidata, *dst = _sdata; dst < _edata;)
        *dst++ = *src++;
    for (uint32_t *dst = _sbss; dst < _ebss;)
        *dst++ = 0;
    main();
    for (;;) {
    }
}

void Default_Handler(void)
{
    for (;;) {
    }
}

#define WEAK_DEFAULT __attribute__((weak, alias("Default_Handler")))
void NMI_Handler(void) WEAK_DEFAULT;
void HardFault_Handler(void) WEAK_DEFAULT;
void MemManage_Handler(void) WEAK_DEFAULT;
void BusFault_Handler(void) WEAK_DEFAULT;
void UsageFault_Handler(void) WEAK_DEFAULT;
void SVC_Handler(void) WEAK_DEFAULT;
void DebugMon_Handler(void) WEAK_DEFAULT;
void PendSV_Handler(void) WEAK_DEFAULT;
void SysTick_Handler(void) WEAK_DEFAULT;

typedef void (*vector_t)(void);

#pragma GCC diagnostic ignored "-Woverride-init" /* the UART's entry overrides the default range */

__attribute__((section(".isr_vector"), used)) const vector_t vectors[16 + PORT_IRQ_COUNT] = {
    [0] = (vector_t)_estack,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = HardFault_Handler,
    [4] = MemManage_Handler,
    [5] = BusFault_Handler,
    [6] = UsageFault_Handler,
    [11] = SVC_Handler,
    [12] = DebugMon_Handler,
    [14] = PendSV_Handler,
    [15] = SysTick_Handler,
    [16 ... 16 + PORT_IRQ_COUNT - 1] = Default_Handler,
    [16 + PORT_UART_IRQN] = port_uart_irq,
};

void _exit(int status)
{
    (void)status;
    for (;;) {
    }
}

void *_sbrk(int increment)
{
    (void)increment;
    errno = ENOMEM;
    return (void *)-1;
}

int _write(int fd, const void *buf, int n)
{
    (void)fd, (void)buf;
    return n; /* discarded: the UART carries only protocol frames */
}

int _read(int fd, void *buf, int n)
{
    (void)fd, (void)buf, (void)n;
    return 0;
}

int _close(int fd)
{
    (void)fd;
    return -1;
}

int _lseek(int fd, int offset, int whence)
{
    (void)fd, (void)offset, (void)whence;
    return 0;
}

int _fstat(int fd, struct stat *st)
{
    (void)fd;
    st->st_mode = S_IFCHR;
    return 0;
}

int _isatty(int fd)
{
    (void)fd;
    return 1;
}

int _kill(int pid, int sig)
{
    (void)pid, (void)sig;
    errno = EINVAL;
    return -1;
}

int _getpid(void)
{
    return 1;
}
