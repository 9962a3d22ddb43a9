"""MicroPython boards: the device half as a native .mpy module, the MicroPython that runs it, and mpremote."""
