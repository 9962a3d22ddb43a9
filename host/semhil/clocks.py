"""Clock plans for the STM32 families: the PLL dividers, bus prescalers and flash wait states that
give a board file's clock_hz from its oscillator, computed here so that the C port only writes
registers. Limits from the reference manuals (RM0090/RM0390 for F4, RM0385 for F7, RM0433 for H7,
supply 2.7-3.6 V; H7 at voltage scale 1, whose ceiling is 400 MHz)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .boards import Board
from .errors import SemhilError

MHZ = 1_000_000


@dataclass(frozen=True)
class PllLimits:
    m: range
    n: range
    p: tuple[int, ...]
    vco_in: tuple[int, int]
    vco_out: tuple[int, int]
    sysclk_max: int
    hclk_max: int
    apb1_max: int
    apb2_max: int
    hsi_hz: int
    overdrive_above: int | None  # F4/F7: SYSCLK above this needs the over-drive regulator mode


LIMITS = {
    "stm32f4": PllLimits(range(2, 64), range(50, 433), (2, 4, 6, 8), (1 * MHZ, 2 * MHZ), (100 * MHZ, 432 * MHZ),
                         180 * MHZ, 180 * MHZ, 45 * MHZ, 90 * MHZ, 16 * MHZ, 168 * MHZ),
    "stm32f7": PllLimits(range(2, 64), range(50, 433), (2, 4, 6, 8), (1 * MHZ, 2 * MHZ), (100 * MHZ, 432 * MHZ),
                         216 * MHZ, 216 * MHZ, 54 * MHZ, 108 * MHZ, 16 * MHZ, 180 * MHZ),
    "stm32h7": PllLimits(range(1, 64), range(4, 513), tuple(range(2, 129, 2)), (2 * MHZ, 16 * MHZ), (192 * MHZ, 836 * MHZ),
                         400 * MHZ, 200 * MHZ, 100 * MHZ, 100 * MHZ, 64 * MHZ, None),
}
DIVIDERS = (1, 2, 4, 8, 16)
H7_FLASH = ((70, 0, 0), (140, 1, 1), (185, 2, 1), (210, 2, 2), (225, 3, 2), (240, 4, 2))  # VOS1: MHz, wait states, WRHIGHFREQ


@dataclass(frozen=True)
class ClockPlan:
    sysclk_hz: int
    source: str               # emulated | hsi | hse-crystal | hse-bypass
    input_hz: int = 0         # the PLL's input oscillator
    pll_m: int = 0
    pll_n: int = 0
    pll_p: int = 0
    pll_q: int = 0
    ahb_div: int = 1
    apb1_div: int = 1
    apb2_div: int = 1
    flash_latency: int = 0
    flash_wrhighfreq: int = 0  # H7 only
    overdrive: bool = False

    @property
    def hclk_hz(self) -> int:
        return self.sysclk_hz // self.ahb_div

    @property
    def vco_in_hz(self) -> int:
        return self.input_hz // self.pll_m if self.pll_m else 0

    def describe(self) -> str:
        if self.source == "emulated":
            return f"{self.sysclk_hz / MHZ:g} MHz as the emulator models it (no clock set-up)"
        return (f"{self.sysclk_hz / MHZ:g} MHz: {self.source} {self.input_hz / MHZ:g} MHz / M {self.pll_m} x N {self.pll_n} "
                f"/ P {self.pll_p}; AHB {self.hclk_hz / MHZ:g} MHz, APB1 {self.hclk_hz // self.apb1_div / MHZ:g} MHz, "
                f"APB2 {self.hclk_hz // self.apb2_div / MHZ:g} MHz; flash {self.flash_latency} wait states"
                + (", over-drive" if self.overdrive else ""))

    def defines(self) -> dict[str, int]:
        """The BOARD_* macros the family's port reads (see device/ports/README.md)."""
        return {"BOARD_CLOCK_SETUP": int(self.source != "emulated"), "BOARD_CLOCK_HSE": int(self.source.startswith("hse")),
                "BOARD_HSE_BYPASS": int(self.source == "hse-bypass"), "BOARD_PLL_INPUT_HZ": self.input_hz,
                "BOARD_PLL_M": self.pll_m, "BOARD_PLL_N": self.pll_n, "BOARD_PLL_P": self.pll_p, "BOARD_PLL_Q": self.pll_q,
                "BOARD_AHB_DIV": self.ahb_div, "BOARD_APB1_DIV": self.apb1_div, "BOARD_APB2_DIV": self.apb2_div,
                "BOARD_FLASH_LATENCY": self.flash_latency, "BOARD_FLASH_WRHIGHFREQ": self.flash_wrhighfreq,
                "BOARD_OVERDRIVE": int(self.overdrive)}


def _smallest_divider(clock: int, ceiling: int) -> int:
    return next(d for d in DIVIDERS if clock // d <= ceiling)


def _flash_wait_states(family: str, hclk: int) -> tuple[int, int]:
    if family == "stm32h7":
        return next((ws, wr) for mhz, ws, wr in H7_FLASH if hclk <= mhz * MHZ)
    return math.ceil(hclk / (30 * MHZ)) - 1, 0  # F4/F7 at 2.7-3.6 V: one wait state per 30 MHz


def _pll(limits: PllLimits, input_hz: int, target: int) -> tuple[int, int, int] | None:
    """M, N, P with input/M*N/P == target exactly, the highest VCO input first (less jitter)."""
    for m in limits.m:
        vco_in = input_hz // m
        if input_hz % m or not limits.vco_in[0] <= vco_in <= limits.vco_in[1]:
            continue
        for p in limits.p:
            n, rest = divmod(target * p, vco_in)
            if not rest and n in limits.n and limits.vco_out[0] <= vco_in * n <= limits.vco_out[1]:
                return m, n, p
    return None


def clock_plan(board: Board) -> ClockPlan:
    """How the board's port makes clock_hz; an error naming the board file when it cannot be made."""
    if board.clock_source in (None, "emulated"):
        return ClockPlan(board.clock_hz, "emulated")
    limits = LIMITS[board.family]
    where = f"{board.path or board.name}"
    if board.clock_hz > limits.sysclk_max:
        raise SemhilError(f"{where}: clock_hz = {board.clock_hz} is above the {board.family} ceiling of {limits.sysclk_max} Hz")
    input_hz = limits.hsi_hz if board.clock_source == "hsi" else board.hse_hz
    found = _pll(limits, input_hz, board.clock_hz)
    if found is None:
        raise SemhilError(f"{where}: clock_hz = {board.clock_hz} cannot be made from a {input_hz / MHZ:g} MHz "
                          f"{board.clock_source} with the {board.family} PLL (VCO {limits.vco_out[0] // MHZ}-"
                          f"{limits.vco_out[1] // MHZ} MHz, P in {limits.p[0]}..{limits.p[-1]}); choose a reachable clock, "
                          "e.g. a multiple of 2 MHz")
    m, n, p = found
    vco = input_hz // m * n
    ahb = _smallest_divider(board.clock_hz, limits.hclk_max)
    hclk = board.clock_hz // ahb
    wait_states, wrhighfreq = _flash_wait_states(board.family, hclk)
    return ClockPlan(board.clock_hz, board.clock_source, input_hz, m, n, p, pll_q=min(15, max(2, math.ceil(vco / (48 * MHZ)))),
                     ahb_div=ahb, apb1_div=_smallest_divider(hclk, limits.apb1_max), apb2_div=_smallest_divider(hclk, limits.apb2_max),
                     flash_latency=wait_states, flash_wrhighfreq=wrhighfreq,
                     overdrive=limits.overdrive_above is not None and board.clock_hz > limits.overdrive_above)
