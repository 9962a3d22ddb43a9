# semhil's program on a MicroPython board: the device half (the native module semhil_model) answers
# semhil's framed protocol on the board's REPL stream (UART, USB or a pseudo-terminal) until the host
# sends RELEASE, then the board is back at its REPL. Started by the host:
#     import semhil_dut; semhil_dut.main("<board name>", "us" or "cpu")
import gc
import sys
import time

import micropython
import semhil_model


def _machine_hz():
    try:
        import machine

        hz = machine.freq()
    except (ImportError, AttributeError):
        return 0
    return hz[0] if isinstance(hz, tuple) else hz


def _module_bytes():
    try:
        import os

        return os.stat(semhil_model.__file__)[6]
    except (AttributeError, OSError):
        return 0


def _info(timer):
    gc.collect()
    lines = (
        ("micropython", ".".join(str(v) for v in sys.implementation.version[:3])),
        ("platform", sys.platform),
        ("timer", timer),
        ("module_bytes", _module_bytes()),
        ("heap_used_bytes", gc.mem_alloc()),
        ("heap_free_bytes", gc.mem_free()),
    )
    return "".join("%s=%s\n" % line for line in lines)


def main(board, timer="us"):
    # "cpu": time.ticks_cpu, the core's cycle counter where the port has one (DWT on STM32);
    # "us": time.ticks_us (instructions / 1000 under QEMU -icount shift=0)
    ticks, hz = (time.ticks_cpu, _machine_hz()) if timer == "cpu" else (time.ticks_us, 1000000)
    period = time.ticks_add(0, -1) + 1
    info = _info(timer)
    micropython.kbd_intr(-1)  # frames carry any byte: Ctrl-C is data now
    try:
        semhil_model.serve(sys.stdin.buffer, sys.stdout.buffer, ticks, period, hz, _machine_hz(), board, info)
    finally:
        micropython.kbd_intr(3)
