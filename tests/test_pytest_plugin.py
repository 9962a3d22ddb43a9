"""The pytest plugin's pure parts: which board a test id names, and capability markers."""
from semhil.boards import load_board
from semhil.pytest_plugin import board_of, missing_capability

TARGETS = ["native", "qemu-stm32f405", "qemu-cortex-m7", "nucleo-f446re-0671", "nucleo-f446re-0672"]


def test_the_board_is_found_among_a_tests_parameters():
    assert board_of("t.py::test_x[qemu-stm32f405-standalone]", TARGETS) == "qemu-stm32f405"
    assert board_of("t.py::test_x[native]", TARGETS) == "native"
    assert board_of("t.py::test_x[0.01-qemu-cortex-m7-nnom]", TARGETS) == "qemu-cortex-m7"
    assert board_of("t.py::test_x[nucleo-f446re-0672-standalone]", TARGETS) == "nucleo-f446re-0672"
    assert board_of("t.py::test_x[standalone]", TARGETS) is None
    assert board_of("t.py::test_x", TARGETS) is None


def test_capabilities_say_what_the_board_lacks():
    f405, m7, native = load_board("qemu-stm32f405"), load_board("qemu-cortex-m7"), load_board("native")
    assert missing_capability(f405, min_ram_kb=512) == "needs 512 KB RAM, qemu-stm32f405 has 128 KB"
    assert missing_capability(m7, min_ram_kb=512) is None
    assert missing_capability(native, min_ram_kb=10**6, min_flash_kb=10**6) is None  # the host has no board limit
    assert missing_capability(f405, core="cortex-m7") == "needs a cortex-m7 core, qemu-stm32f405 has a cortex-m4"
    assert missing_capability(m7, run_kind="probe") == "needs a probe board, qemu-cortex-m7 is qemu"
    assert missing_capability(f405, min_flash_kb=2048) == "needs 2048 KB flash, qemu-stm32f405 has 1024 KB"
