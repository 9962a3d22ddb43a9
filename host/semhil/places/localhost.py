"""A labgrid lab on this computer: a coordinator and an exporter on free ports, for the tests, the
benchmark and trying places out. `exports` is the exporter's configuration (group -> resources), as
in a lab's exporter.yaml; every process is stopped when the lab closes."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .coordinator import Coordinator, PlaceError

BIN = Path(sys.executable).parent  # labgrid's commands, installed beside semhil's Python
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalLab:
    def __init__(self, folder: Path, exports: dict, exporter_name: str = "rig1"):
        self.folder, self.exports, self.exporter_name = Path(folder), exports, exporter_name
        self.address = f"127.0.0.1:{free_port()}"
        self.processes: list[subprocess.Popen] = []

    def _start(self, log: str, *command: str) -> None:
        self.processes.append(subprocess.Popen([str(BIN / command[0]), *command[1:]], cwd=self.folder, stdout=(self.folder / log).open("w"),
                                               stderr=subprocess.STDOUT))

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise PlaceError(f"the local labgrid {what} did not start; see the logs in {self.folder}")
            time.sleep(0.2)

    def _online(self) -> int:
        """How many of the exported resources the coordinator knows."""
        try:
            with Coordinator(self.address) as coordinator:
                groups = coordinator.session.resources.get(self.exporter_name, {})
                return sum(len(resources) for resources in groups.values())
        except PlaceError:
            return 0

    def start(self) -> "LocalLab":
        self.folder.mkdir(parents=True, exist_ok=True)
        self._start("coordinator.log", "labgrid-coordinator", "--listen", self.address)
        self._wait(lambda: self.client_ok("places"), "coordinator")
        (self.folder / "exporter.yaml").write_text(yaml.safe_dump(self.exports))
        self._start("exporter.log", "labgrid-exporter", "--coordinator", self.address, "--name", self.exporter_name,
                    "--hostname", "127.0.0.1", "exporter.yaml")
        wanted = sum(len(resources) for resources in self.exports.values())
        self._wait(lambda: self._online() == wanted, "exporter")
        return self

    def client_ok(self, *args: str) -> bool:
        try:
            self.client(*args)
        except (PlaceError, subprocess.TimeoutExpired):
            return False
        return True

    def client(self, *args: str) -> str:
        """labgrid-client against this lab's coordinator; raises with what it said when it fails."""
        done = subprocess.run([str(BIN / "labgrid-client"), "-x", self.address, *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise PlaceError(f"labgrid-client {' '.join(args)}: {(done.stdout + done.stderr).strip()}")
        return done.stdout

    def add_place(self, name: str, board: str, group: str | None = None) -> None:
        """A place tagged board=BOARD with the resources of an exported group (None: no resources at all)."""
        self.client("-p", name, "create")
        if group:
            self.client("-p", name, "add-match", f"{self.exporter_name}/{group}/*")
        self.client("-p", name, "set-tags", f"board={board}")

    def holder_of(self, place: str) -> str | None:
        with Coordinator(self.address) as coordinator:
            return coordinator.place(place).acquired

    def close(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []

    def __enter__(self) -> "LocalLab":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()
