/* Native Linux port: the UART is the master side of a pseudo-terminal, ticks are nanoseconds of
 * this thread's CPU time, and inference runs on its own painted stack through ucontext. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <termios.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "board_config.h"
#include "th_port.h"

#define STACK_BYTES (256u * 1024u)
#define STACK_PAINT 0xC0DEC0DEu

static int master = -1;
static uint8_t rx_buf[4096];
static size_t rx_len, rx_pos;

static uint32_t stack[STACK_BYTES / 4] __attribute__((aligned(16)));
static ucontext_t caller, callee;
static void (*job_fn)(void *);
static void *job_arg;

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static void sleep_1ms(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

void th_init(void)
{
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        exit(1);
    master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0)
        fail("pseudo-terminal");
    struct termios tio;
    if (tcgetattr(master, &tio) != 0)
        fail("tcgetattr");
    cfmakeraw(&tio);
    if (tcsetattr(master, TCSANOW, &tio) != 0 || fcntl(master, F_SETFL, O_NONBLOCK) != 0)
        fail("pseudo-terminal set-up");
    th_timer_ticks(); /* binds clock_gettime now, not on the first inference's stack */
    printf("char device redirected to %s (label serial0)\n", ptsname(master));
    fflush(stdout);
}

int th_uart_read_byte(void)
{
    while (rx_pos == rx_len) {
        struct pollfd p = {.fd = master, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            fail("poll");
        ssize_t n = read(master, rx_buf, sizeof rx_buf);
        if (n > 0) {
            rx_len = (size_t)n;
            rx_pos = 0;
        } else if (n == 0 || errno == EIO) {
            sleep_1ms(); /* nobody has the slave side open (yet) */
        } else if (errno != EAGAIN && errno != EINTR) {
            fail("read");
        }
    }
    return rx_buf[rx_pos++];
}

void th_uart_write(const uint8_t *buf, uint32_t n)
{
    while (n > 0) {
        ssize_t w = write(master, buf, n);
        if (w > 0) {
            buf += w;
            n -= (uint32_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = master, .events = POLLOUT};
            if (poll(&p, 1, 1000) <= 0 || !(p.revents & POLLOUT))
                return; /* nobody reads: the bytes are lost, as on a UART */
        } else {
            return;
        }
    }
}

uint64_t th_timer_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t th_timer_hz(void)
{
    return 1000000000u;
}

uint32_t th_core_clock_hz(void)
{
    return 0;
}

uint32_t th_stack_bytes(void)
{
    return STACK_BYTES;
}

static void trampoline(void)
{
    job_fn(job_arg);
}

uint32_t th_run_measuring_stack(void (*fn)(void *), void *arg)
{
    for (uint32_t i = 0; i < STACK_BYTES / 4; i++)
        stack[i] = STACK_PAINT;
    job_fn = fn;
    job_arg = arg;
    if (getcontext(&callee) != 0)
        fail("getcontext");
    callee.uc_stack.ss_sp = stack;
    callee.uc_stack.ss_size = STACK_BYTES;
    callee.uc_link = &caller;
    makecontext(&callee, trampoline, 0);
    if (swapcontext(&caller, &callee) != 0)
        fail("swapcontext");
    uint32_t i = 0;
    while (i < STACK_BYTES / 4 && stack[i] == STACK_PAINT)
        i++;
    return STACK_BYTES - 4 * i;
}

const char *th_board_name(void)
{
    return BOARD_NAME;
}

const char *th_reset_cause(void)
{
    return "process start";
}
