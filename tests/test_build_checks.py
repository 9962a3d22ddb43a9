"""What a build checks of its firmware, with the real cross compiler: the model is in it
(model_symbols.json against the ELF's symbols), and its worst-case stack, worked out from GCC's
call graph, sizes the stack region and the peak RAM the build reports and refuses on."""
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from elftools.elf.elffile import ELFFile

from semhil import build as build_module
from semhil.backends import SYMBOLS_FILE
from semhil.boards import load_board
from semhil.build import ModelTooLarge, build_firmware, firmware_stack, stack_region
from semhil.firmware_check import ModelMissing, missing_model_symbols
from semhil.paths import BOARDS_DIR, DEVICE_DIR
from semhil.stack_usage import (EXCEPTION_FRAME_BYTES, LIBRARY_CALL_BYTES, StackEstimate, Unbounded, parse_callgraph,
                                worst_case)

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """An untrained codec written as a bundle: enough to build a real firmware."""
    from codec_train.data import load_dataset
    from codec_train.train import TrainConfig, build_models, write_bundle
    torch.manual_seed(0)
    task, codec = build_models(TrainConfig(), (28, 28, 1), 10)
    return write_bundle(tmp_path_factory.mktemp("checks") / "bundle", TrainConfig(), load_dataset("mnist5k"), task.eval(),
                        codec.eval(), {})


def board_file(tmp_path: Path, ram_bytes: int, stack_bytes: int):
    """qemu-stm32f405 with other RAM and stack figures, as a board file of its own."""
    text = (BOARDS_DIR / "qemu-stm32f405.toml").read_text()
    path = tmp_path / "small-ram.toml"
    path.write_text(text.replace('name = "qemu-stm32f405"', 'name = "small-ram"')
                    .replace("ram_bytes = 131072", f"ram_bytes = {ram_bytes}").replace("stack_bytes = 16384", f"stack_bytes = {stack_bytes}"))
    return load_board(str(path))


def stack_section_bytes(elf: Path) -> int:
    with elf.open("rb") as f:
        return ELFFile(f).get_section_by_name(".stack")["sh_size"]


@pytest.fixture
def device_copy(tmp_path, monkeypatch):
    """device/ copied for one test, the build pointed at the copy: a test changes the firmware's C there."""
    device = tmp_path / "device"
    shutil.copytree(DEVICE_DIR, device)
    monkeypatch.setattr(build_module, "DEVICE_DIR", device)
    return device


# --- the model is in the firmware -------------------------------------------------------------

@pytest.mark.parametrize("name", ["qemu-stm32f405", "native"])
def test_a_normal_build_contains_its_model(bundle, name):
    firmware = build_firmware(bundle, load_board(name))
    symbols = json.loads((bundle.path / "device" / "standalone" / SYMBOLS_FILE).read_text())
    assert symbols["functions"] and symbols["objects"]  # entry points and weight arrays to look for
    assert missing_model_symbols(firmware.path, symbols) == []


CORE_WITHOUT_MODEL = """\
/* A core that never runs the model, as when the compiler proves INFER unreachable (a 16-bit length
 * field that can never equal the input's size): only device_half_init is called. */
#include <stdint.h>

#include "model.h"
#include "th_port.h"

int main(void)
{
    th_init();
    uint8_t status = (uint8_t)device_half_init();
    for (;;) {
        uint8_t c = (uint8_t)(th_uart_read_byte() ^ status);
        th_uart_write(&c, 1);
    }
}
"""


def test_a_firmware_that_lost_its_model_is_refused(bundle, device_copy):
    (device_copy / "core" / "ee_main.c").write_text(CORE_WITHOUT_MODEL)
    out_dir = bundle.path.resolve() / "build" / "qemu-stm32f405-standalone"
    with pytest.raises(ModelMissing) as refused:
        build_firmware(bundle, load_board("qemu-stm32f405"))
    message = str(refused.value)
    symbols = json.loads((bundle.path / "device" / "standalone" / SYMBOLS_FILE).read_text())
    # device_half_init sets the row pipeline's stages: it keeps the convs' weights; begin, rows and end go
    dropped = [f for f in symbols["functions"] if f != "device_half_init"]
    assert "the firmware built for qemu-stm32f405 does not contain the model" in message
    assert f"{len(dropped)} of its {len(symbols['functions']) + len(symbols['objects'])}" in message
    assert all(name in message for name in dropped)
    assert "proved the inference path unreachable" in message and "no image chunk can ever pass" in message
    assert str(out_dir / "firmware.map") in message and (out_dir / "firmware.map").is_file()
    assert not (out_dir / "firmware.elf").exists()


def test_the_largest_of_several_arrays_of_one_name_counts(bundle):
    firmware = build_firmware(bundle, load_board("qemu-stm32f405"))
    symbols = json.loads((bundle.path / "device" / "standalone" / SYMBOLS_FILE).read_text())
    name, size = next(iter(symbols["objects"].items()))
    assert missing_model_symbols(firmware.path, {"objects": {name: size}}) == []
    assert missing_model_symbols(firmware.path, {"objects": {name: size + 1}}) == [name]
    assert missing_model_symbols(firmware.path, {"functions": ["no_such_function"], "objects": {}}) == ["no_such_function"]


# --- the worst-case stack: the path computation on a hand-written call graph ------------------

CALL_GRAPH = """\
graph: { title: "app.c"
node: { title: "Reset_Handler" label: "Reset_Handler\\napp.c:1:6\\n8 bytes (static)" }
node: { title: "main" label: "main\\napp.c:2:5\\n16 bytes (static)" }
edge: { sourcename: "Reset_Handler" targetname: "main" label: "app.c:1:20" }
node: { title: "app.c:parse" label: "parse\\napp.c:3:13\\n40 bytes (static)" }
edge: { sourcename: "main" targetname: "app.c:parse" label: "app.c:2:30" }
node: { title: "memcpy" label: "__builtin_memcpy\\n<built-in>" shape : ellipse }
edge: { sourcename: "app.c:parse" targetname: "memcpy" }
node: { title: "runner" label: "runner\\napp.c:4:6\\n24 bytes (static)" }
edge: { sourcename: "main" targetname: "runner" label: "app.c:2:40" }
node: { title: "__indirect_call" label: "Indirect Call Placeholder" shape : ellipse }
edge: { sourcename: "runner" targetname: "__indirect_call" label: "app.c:4:30" }
node: { title: "app.c:small_job" label: "small_job\\napp.c:5:13\\n8 bytes (static)" }
node: { title: "app.c:big_job" label: "big_job\\napp.c:6:13\\n200 bytes (dynamic,bounded)" }
edge: { sourcename: "app.c:big_job" targetname: "leaf" }
node: { title: "leaf" label: "leaf\\napp.c:7:6\\n4 bytes (static)" }
}
"""


@pytest.fixture
def graph(tmp_path):
    path = tmp_path / "app.ci"
    path.write_text(CALL_GRAPH)
    return parse_callgraph([path])


def test_deepest_path_resolves_indirect_calls_to_the_deepest_target(graph):
    # through the pointer: runner (24) + big_job (200, a bounded dynamic frame) + leaf (4)
    assert worst_case(graph, "Reset_Handler", ["app.c:small_job", "app.c:big_job"]) == (
        8 + 16 + 24 + 200 + 4, ("Reset_Handler", "main", "runner", "(indirect call)", "big_job", "leaf"))
    # with only the small job behind the pointer, parse and its library call are deeper
    assert worst_case(graph, "Reset_Handler", lambda caller: ["app.c:small_job"]) == (
        8 + 16 + 40 + LIBRARY_CALL_BYTES, ("Reset_Handler", "main", "parse", f"memcpy (library, {LIBRARY_CALL_BYTES} B allowed)"))
    assert worst_case(graph, "app.c:parse", [], library_bytes=10)[0] == 50


def test_recursion_dynamic_stack_and_a_pointer_with_no_target_are_unbounded(graph, tmp_path):
    with pytest.raises(Unbounded, match="no function whose address is taken"):
        worst_case(graph, "main", [])
    with pytest.raises(Unbounded, match=r"recursion: main -> runner -> main"):
        worst_case(graph, "Reset_Handler", ["main"])
    dynamic = tmp_path / "dynamic.ci"
    dynamic.write_text(CALL_GRAPH.replace("200 bytes (dynamic,bounded)", "200 bytes (dynamic)"))
    with pytest.raises(Unbounded, match="dynamic stack .* in big_job"):
        worst_case(parse_callgraph([dynamic]), "Reset_Handler", ["app.c:big_job"])


def test_recursion_of_known_depth_is_followed_that_deep(tmp_path):
    """The row pipeline's shape: each stage hands its row on by calling the next stage (stage -> emit ->
    stage), the last one through a pointer to the tail; at most `depth` stages at once."""
    path = tmp_path / "pipeline.ci"
    path.write_text("""\
node: { title: "main" label: "main\\np.c:1:5\\n16 bytes (static)" }
node: { title: "p.c:stage" label: "stage\\np.c:2:13\\n40 bytes (static)" }
node: { title: "p.c:emit" label: "emit\\np.c:3:13\\n8 bytes (static)" }
node: { title: "p.c:tail" label: "tail\\np.c:4:13\\n100 bytes (static)" }
edge: { sourcename: "main" targetname: "p.c:stage" }
edge: { sourcename: "p.c:stage" targetname: "p.c:emit" }
edge: { sourcename: "p.c:emit" targetname: "p.c:stage" }
edge: { sourcename: "p.c:emit" targetname: "__indirect_call" }
""")
    graph = parse_callgraph([path])
    for depth in (1, 2, 5):
        size, chain = worst_case(graph, "main", ["p.c:tail"], recursion_bounds={"stage": depth})
        assert size == 16 + depth * (40 + 8) + 100
        assert chain == ("main", *("stage", "emit") * depth, "(indirect call)", "tail")
    with pytest.raises(Unbounded, match=r"recursion: stage -> emit -> stage"):
        worst_case(graph, "main", ["p.c:tail"])
    with pytest.raises(Unbounded, match=r"recursion: stage -> emit -> stage"):  # a bound on a function outside the cycle
        worst_case(graph, "main", ["p.c:tail"], recursion_bounds={"tail": 3})


# --- the stack region and the refusal -----------------------------------------------------------

def test_stack_region_is_the_board_files_grown_or_shrunk_to_the_estimate(tmp_path):
    board = load_board("qemu-stm32f405")  # 128 KB RAM, 16 KB stack_bytes
    kb = 1024
    assert stack_region(board, 10 * kb, 100 * kb, StackEstimate(900), tmp_path) == (16 * kb, "")
    region, note = stack_region(board, 10 * kb, 120 * kb, StackEstimate(900), tmp_path)
    assert region == 8 * kb and "shrunk from the board file's 16.0 KB to the 8.0 KB" in note
    region, note = stack_region(board, 10 * kb, 100 * kb, StackEstimate(20 * kb - 3), tmp_path)
    assert region == 20 * kb and "grown" in note
    assert stack_region(board, 10 * kb, 100 * kb, StackEstimate(None, notes=("recursion",)), tmp_path) == (16 * kb, "")
    with pytest.raises(ModelTooLarge, match=r"needs 128.5 KB RAM = 127.0 KB static \+ 1.5 KB stack \(the worst case .*\), "
                                            r"board has 128.0 KB"):
        stack_region(board, 10 * kb, 127 * kb, StackEstimate(1536), tmp_path)
    with pytest.raises(ModelTooLarge, match=r"needs 136.0 KB RAM = 120.0 KB static \+ 16.0 KB stack \(the board file's "
                                            r"stack_bytes: recursion\), board has 128.0 KB"):
        stack_region(board, 10 * kb, 120 * kb, StackEstimate(None, notes=("recursion",)), tmp_path)
    with pytest.raises(ModelTooLarge, match=r"needs 1,100.0 KB flash, board has 1,024.0 KB"):
        stack_region(board, 1100 * kb, 10 * kb, StackEstimate(900), tmp_path)


def test_the_estimate_covers_the_chain_from_reset_and_an_interrupt_on_top(bundle):
    firmware = build_firmware(bundle, load_board("qemu-stm32f405"))
    m = firmware.memory
    assert m.stack_region_bytes == 16384 and stack_section_bytes(firmware.path) == 16384
    assert 0 < m.stack_estimate_bytes < 16384 and m.peak_ram_bytes == m.ram_static_bytes + m.stack_estimate_bytes
    assert m.stack_path[:2] == ("Reset_Handler", "main") and any(step.startswith("+ interrupt: ") for step in m.stack_path)
    assert "th_run_measuring_stack" in m.stack_path and "(indirect call)" in m.stack_path  # the inference is the deepest
    inference = firmware_stack(firmware, "th_run_measuring_stack")
    assert EXCEPTION_FRAME_BYTES < inference.bytes < m.stack_estimate_bytes
    out_dir = firmware.path.parent
    assert list(out_dir.glob("firmware.elf-ee_main.su")) and list(out_dir.glob("firmware.elf-ee_main.ci"))
    assert not list(DEVICE_DIR.rglob("*.su")) and not list(DEVICE_DIR.rglob("*.ci"))  # GCC's files stay in the build folder


def test_a_board_too_small_for_the_stack_bytes_gets_the_stack_it_needs(bundle, tmp_path):
    measured = build_firmware(bundle, load_board("qemu-stm32f405")).memory
    ram = (measured.ram_static_bytes + measured.stack_estimate_bytes + 1024) // 8 * 8  # static + stack_bytes does not fit
    firmware = build_firmware(bundle, board_file(tmp_path, ram, ram - 8))
    m = firmware.memory
    assert m.stack_estimate_bytes == measured.stack_estimate_bytes and m.peak_ram_bytes <= ram
    assert m.stack_estimate_bytes <= m.stack_region_bytes == stack_section_bytes(firmware.path) < ram - 8
    assert any("stack region shrunk" in note for note in m.notes)

    grown = build_firmware(bundle, board_file(tmp_path, 131072, 64)).memory  # stack_bytes below the estimate
    assert grown.stack_region_bytes == (grown.stack_estimate_bytes + 7) // 8 * 8 and any("grown" in n for n in grown.notes)

    too_small = (measured.ram_static_bytes + measured.stack_estimate_bytes) // 8 * 8 - 1024  # its chunks are smaller too
    with pytest.raises(ModelTooLarge, match=rf"does not fit small-ram: needs [\d.]+ KB RAM = [\d.]+ KB static \+ [\d.]+ KB "
                                            rf"stack \(the worst case of GCC's call graph\), board has {too_small / 1024:.1f} KB "
                                            rf"\([\d,]+ B short\)"):
        build_firmware(bundle, board_file(tmp_path, too_small, too_small - 8))
    assert not (bundle.path / "build" / "small-ram-standalone" / "firmware.elf").exists()


HANDLERS = {
    "deep": """\
#include <stdint.h>
volatile uint8_t sink;
void PendSV_Handler(void) /* an interrupt with a large frame: the estimate stacks it on the deepest thread path */
{
    volatile uint8_t buf[3000];
    buf[sink] = 1;
    sink = buf[sink + 1];
}
""",
    "recursive": """\
#include <stdint.h>
volatile uint32_t sink;
static uint32_t walk(uint32_t n)
{
    volatile uint32_t pad[4] = {n, n, n, n};
    return n ? walk(n - 1) * 3 + pad[1] : pad[2];
}
void PendSV_Handler(void)
{
    sink = walk(sink);
}
""",
    "dynamic": """\
#include <stdint.h>
volatile uint32_t sink;
void PendSV_Handler(void)
{
    volatile uint8_t buf[sink % 64 + 1];
    buf[0] = 1;
    sink = buf[0];
}
"""}


@pytest.mark.parametrize("kind", list(HANDLERS))
def test_interrupt_handlers_count_and_recursion_or_dynamic_stack_is_unbounded(bundle, device_copy, kind):
    """An interrupt handler of the test's own (PendSV_Handler is weak in startup.c) compiled into the firmware."""
    plain = build_firmware(bundle, load_board("qemu-stm32f405")).memory
    (device_copy / "core" / "test_handler.c").write_text(HANDLERS[kind])
    m = build_firmware(bundle, load_board("qemu-stm32f405")).memory
    if kind == "deep":
        assert m.stack_estimate_bytes >= plain.stack_estimate_bytes + 3000 - 200
        assert "+ interrupt: PendSV_Handler" in m.stack_path
    else:
        assert m.stack_estimate_bytes is None and m.peak_ram_bytes is None and m.stack_region_bytes == 16384
        reason = ("recursion: walk -> walk" if kind == "recursive"
                  else "dynamic stack (alloca or a variable-length array) in PendSV_Handler")
        assert any(reason in note for note in m.notes), m.notes


def test_build_prints_flash_static_stack_and_peak_ram(bundle):
    from click.testing import CliRunner
    from semhil.cli import cli
    done = CliRunner().invoke(cli, ["build", str(bundle.path), "--board", "qemu-stm32f405"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output + repr(done.exception)
    m = build_firmware(bundle, load_board("qemu-stm32f405")).memory
    lines = done.output.splitlines()
    row = {label: next(line for line in lines if label in line) for label in
           ("flash (text + rodata + data)", "static RAM", "stack, worst case", "peak RAM (static + stack)", "stack region linked")}
    assert "of 1,024.0 KB" in row["flash (text + rodata + data)"]
    assert f"({m.stack_estimate_bytes:,} B)" in row["stack, worst case"]
    assert f"{m.peak_ram_bytes / 1024:.1f} KB of 128.0 KB" in row["peak RAM (static + stack)"]
    assert "16.0 KB (the board file's stack_bytes)" in row["stack region linked"]
    assert "deepest stack: Reset_Handler > main" in done.output
    dataclasses.asdict(m)  # plain data: fit for a results JSON
