"""Board files: boards/<name>.toml, validated with errors that name the file, the key and what is allowed."""
from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import SemhilError
from .paths import BOARDS_DIR

FAMILIES = ("native", "stm32f4")
CORES = ("native", "cortex-m4", "cortex-m7")
RUN_KINDS = ("native", "qemu")
LATENCY_SOURCES = {"cpu-time": "ns", "icount": "instructions", "cycles": "cycles"}

# key -> (type, required); nested tables are dicts of the same shape
SCHEMA = {
    "name": (str, True), "family": (str, True), "core": (str, True), "clock_hz": (int, True),
    "flash_bytes": (int, False), "ram_bytes": (int, False), "stack_bytes": (int, False),
    "uart": ({"instance": (str, True), "baud": (int, True)}, True),
    "run": ({"kind": (str, True), "machine": (str, False)}, True),
    "latency": ({"source": (str, True)}, True),
}
CHOICES = {"family": FAMILIES, "core": CORES, "run.kind": RUN_KINDS, "latency.source": tuple(LATENCY_SOURCES)}


@dataclass(frozen=True)
class Board:
    name: str
    family: str
    core: str
    clock_hz: int
    uart_baud: int
    run_kind: str
    latency_source: str
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    stack_bytes: int | None = None
    qemu_machine: str | None = None
    path: Path | None = None

    @property
    def latency_unit(self) -> str:
        return LATENCY_SOURCES[self.latency_source]


def _check(table: dict, schema: dict, where: str, prefix: str = "") -> None:
    for key, value in table.items():
        full = prefix + key
        if key not in schema:
            hint = difflib.get_close_matches(key, schema, n=1)
            raise SemhilError(f"{where}: unknown key '{full}'" + (f" (did you mean '{prefix}{hint[0]}'?)" if hint else "")
                              + f"; allowed: {', '.join(prefix + k for k in schema)}")
        kind, _ = schema[key]
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise SemhilError(f"{where}: '{full}' must be a table ([{full}])")
            _check(value, kind, where, full + ".")
        elif not isinstance(value, kind) or isinstance(value, bool):
            raise SemhilError(f"{where}: '{full}' must be {kind.__name__}, got {value!r}")
        elif full in CHOICES and value not in CHOICES[full]:
            raise SemhilError(f"{where}: '{full}' = {value!r} is not one of: {', '.join(CHOICES[full])}")
    for key, (_, required) in schema.items():
        if required and key not in table:
            raise SemhilError(f"{where}: missing key '{prefix}{key}'")


def load_board_file(path: Path) -> Board:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SemhilError(f"{path}: not valid TOML ({e})") from None
    _check(data, SCHEMA, str(path))
    if data["run"]["kind"] == "qemu" and "machine" not in data["run"]:
        raise SemhilError(f"{path}: 'run.machine' is required when run.kind = 'qemu' (e.g. 'netduinoplus2')")
    return Board(name=data["name"], family=data["family"], core=data["core"], clock_hz=data["clock_hz"],
                 uart_baud=data["uart"]["baud"], run_kind=data["run"]["kind"], latency_source=data["latency"]["source"],
                 flash_bytes=data.get("flash_bytes"), ram_bytes=data.get("ram_bytes"), stack_bytes=data.get("stack_bytes"),
                 qemu_machine=data["run"].get("machine"), path=path)


def board_names(boards_dir: Path = BOARDS_DIR) -> list[str]:
    return sorted(p.stem for p in boards_dir.glob("*.toml"))


def load_board(name_or_path: str, boards_dir: Path = BOARDS_DIR) -> Board:
    """A board by name (boards/<name>.toml) or by the path of a board file."""
    if name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        if not path.is_file():
            raise SemhilError(f"board file {path} does not exist")
        return load_board_file(path)
    path = boards_dir / f"{name_or_path}.toml"
    if not path.is_file():
        known = board_names(boards_dir)
        hint = difflib.get_close_matches(name_or_path, known, n=1)
        raise SemhilError(f"unknown board '{name_or_path}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                          + f"; known boards: {', '.join(known)}; add one as {boards_dir}/<name>.toml")
    board = load_board_file(path)
    if board.name != name_or_path:
        raise SemhilError(f"{path}: name = {board.name!r} but the file is named {name_or_path!r}; make them equal")
    return board
