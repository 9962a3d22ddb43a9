/* The device half as a MicroPython native module (semhil_model.mpy): the firmware's protocol loop
 * (device/core/ee_serve.c) and the model, with this file as the porting layer (th_port.h) over the
 * board's MicroPython: its stdin/stdout streams for the UART, a ticks function of its `time` module
 * for the timer. Built by semhil.micropython.natmod with SEMHIL_NATMOD; driven by semhil_dut.py.
 *
 * The model runs on a stack of this module's own, painted before each chunk, so its peak is measured
 * as on semhil's firmware. Variables are not static: mpy_ld cannot address static bss on x64. */
#include "py/dynruntime.h"

#include "ee_serve.h"
#include "model.h"
#include "th_port.h"

#define STACK_WORDS (SEMHIL_NATMOD_STACK_BYTES / 4)
#define PAINT 0xC5C5C5C5u

uint32_t natmod_stack[STACK_WORDS] __attribute__((aligned(16)));
void *natmod_python_sp; /* MicroPython's stack pointer while the model runs on natmod_stack */
int natmod_on_own_stack;
mp_obj_t natmod_stdin, natmod_stdout, natmod_ticks;
const mp_stream_p_t *natmod_in, *natmod_out;
mp_uint_t natmod_ticks_mask, natmod_ticks_last;
uint64_t natmod_ticks_total;
uint32_t natmod_timer_hz, natmod_core_hz;
const char *natmod_board;

/* Calls fn(arg) with the stack pointer at top (aligned by the caller); *saved gets the caller's. */
static void call_on_stack(void (*fn)(void *), void *arg, void *top, void **saved)
{
#if defined(__x86_64__)
    register void *a __asm__("rdi") = arg;
    __asm__ volatile("mov %%rsp, %%rbx\n\t"
                     "mov %%rsp, (%[saved])\n\t"
                     "mov %[top], %%rsp\n\t"
                     "call *%[fn]\n\t"
                     "mov %%rbx, %%rsp"
                     : "+r"(a)
                     : [fn] "r"(fn), [top] "r"(top), [saved] "r"(saved)
                     : "rax", "rbx", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "memory", "cc", "xmm0", "xmm1", "xmm2",
                       "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
                       "xmm15");
#elif defined(__thumb2__)
    register void *a __asm__("r0") = arg;
    __asm__ volatile("mov r4, sp\n\t"
                     "str r4, [%[saved]]\n\t"
                     "mov sp, %[top]\n\t"
                     "blx %[fn]\n\t"
                     "mov sp, r4"
                     : "+r"(a)
                     : [fn] "r"(fn), [top] "r"(top), [saved] "r"(saved)
                     : "r1", "r2", "r3", "r4", "r12", "lr", "memory", "cc", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8",
                       "s9", "s10", "s11", "s12", "s13", "s14", "s15");
#else
#error "semhil_natmod.c: no stack switch for this architecture (x64 and Thumb-2 only)"
#endif
}

uint32_t th_run_measuring_stack(void (*fn)(void *), void *arg)
{
    for (uint32_t i = 0; i < STACK_WORDS; i++)
        natmod_stack[i] = PAINT;
    natmod_on_own_stack = 1;
    call_on_stack(fn, arg, natmod_stack + STACK_WORDS, &natmod_python_sp);
    natmod_on_own_stack = 0;
    uint32_t untouched = 0;
    while (untouched < STACK_WORDS && natmod_stack[untouched] == PAINT)
        untouched++;
    return (STACK_WORDS - untouched) * 4;
}

static void read_ticks(void *unused)
{
    (void)unused;
    mp_uint_t now = mp_obj_get_int_truncated(mp_call_function_n_kw(natmod_ticks, 0, 0, NULL));
    natmod_ticks_total += (now - natmod_ticks_last) & natmod_ticks_mask;
    natmod_ticks_last = now;
}

/* MicroPython is called on its own stack: its stack check and garbage collector look there. */
uint64_t th_timer_ticks(void)
{
    if (natmod_on_own_stack) {
        void *ignored;
        call_on_stack(read_ticks, NULL, (void *)((uintptr_t)natmod_python_sp & ~(uintptr_t)15), &ignored);
    } else {
        read_ticks(NULL);
    }
    return natmod_ticks_total;
}

int th_uart_read_byte(void)
{
    for (;;) {
        uint8_t byte;
        int error;
        mp_uint_t n = natmod_in->read(natmod_stdin, &byte, 1, &error);
        if (n == 1)
            return byte;
        if (n == 0)
            mp_raise_OSError(MP_EIO); /* the stream ended: the host went away */
        if (error != MP_EAGAIN)
            mp_raise_OSError(error);
    }
}

void th_uart_write(const uint8_t *buf, uint32_t n)
{
    while (n > 0) {
        int error;
        mp_uint_t written = natmod_out->write(natmod_stdout, buf, n, &error);
        if (written == MP_STREAM_ERROR) {
            if (error != MP_EAGAIN)
                mp_raise_OSError(error);
            continue;
        }
        buf += written;
        n -= written;
    }
}

void th_init(void)
{
}

uint32_t th_timer_hz(void)
{
    return natmod_timer_hz;
}

uint32_t th_core_clock_hz(void)
{
    return natmod_core_hz;
}

uint32_t th_stack_bytes(void)
{
    return SEMHIL_NATMOD_STACK_BYTES;
}

const char *th_board_name(void)
{
    return natmod_board;
}

const char *th_reset_cause(void)
{
    return "module started";
}

/* serve(stdin, stdout, ticks, ticks_period, timer_hz, core_clock_hz, board, info): answers semhil's
 * frames on the streams until RELEASE. ticks: e.g. time.ticks_us, wrapping at ticks_period (a power of
 * two); info: more INFO lines ("key=value\n"). */
static mp_obj_t serve(size_t n_args, const mp_obj_t *args)
{
    (void)n_args;
    natmod_stdin = args[0];
    natmod_in = mp_get_stream_raise(args[0], MP_STREAM_OP_READ);
    natmod_stdout = args[1];
    natmod_out = mp_get_stream_raise(args[1], MP_STREAM_OP_WRITE);
    natmod_ticks = args[2];
    natmod_ticks_mask = mp_obj_get_int_truncated(args[3]) - 1;
    natmod_timer_hz = mp_obj_get_int_truncated(args[4]);
    natmod_core_hz = mp_obj_get_int_truncated(args[5]);
    natmod_board = mp_obj_str_get_str(args[6]);
    natmod_ticks_last = mp_obj_get_int_truncated(mp_call_function_n_kw(natmod_ticks, 0, 0, NULL));
    ee_start(mp_obj_str_get_str(args[7]));
    ee_serve();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(serve_obj, 8, 8, serve);

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args)
{
    MP_DYNRUNTIME_INIT_ENTRY
    mp_store_global(MP_QSTR_serve, MP_OBJ_FROM_PTR(&serve_obj));
    mp_store_global(MP_QSTR_bundle_hash, mp_obj_new_str(MODEL_BUNDLE_HASH, sizeof MODEL_BUNDLE_HASH - 1));
    mp_store_global(MP_QSTR_backend, mp_obj_new_str(MODEL_BACKEND, sizeof MODEL_BACKEND - 1));
    mp_store_global(MP_QSTR_stack_bytes, mp_obj_new_int(SEMHIL_NATMOD_STACK_BYTES));
    MP_DYNRUNTIME_INIT_EXIT
}
