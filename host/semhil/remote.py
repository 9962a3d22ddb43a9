"""A board's serial port served over the network with RFC 2217 (telnet COM-port control), so a rig
can span several computers: `semhil serve /dev/ttyACM0 --tcp-port 2217` where the board hangs, and
`rfc2217://that-host:2217` wherever the harness runs (every link in semhil opens pyserial URLs).
The protocol is pyserial's PortManager; this module only moves bytes between socket and port."""
from __future__ import annotations

import errno
import socket
import threading

import serial
from serial.rfc2217 import PortManager

from .errors import SemhilError


class PortWithoutModemLines(serial.Serial):
    """A serial port whose modem lines may not exist (a pseudo-terminal has none): DTR/RTS requests
    from the client are ignored there and CTS/DSR/RI/CD read as inactive."""

    def _update_dtr_state(self):
        self._ignore_missing_lines(super()._update_dtr_state)

    def _update_rts_state(self):
        self._ignore_missing_lines(super()._update_rts_state)

    @staticmethod
    def _ignore_missing_lines(update):
        try:
            update()
        except OSError as e:
            if e.errno != errno.ENOTTY:
                raise

    def _line(self, name: str) -> bool:
        try:
            return getattr(super(), name)
        except OSError as e:
            if e.errno != errno.ENOTTY:
                raise
            return False

    cts = property(lambda self: self._line("cts"))
    dsr = property(lambda self: self._line("dsr"))
    ri = property(lambda self: self._line("ri"))
    cd = property(lambda self: self._line("cd"))


class _Connection:
    """What PortManager writes its telnet replies to: the client's socket, one writer at a time."""

    def __init__(self, sock: socket.socket):
        self.sock, self.lock = sock, threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)


class PortServer:
    """Serves one serial port to one network client at a time, until closed."""

    def __init__(self, port: str, host: str = "127.0.0.1", tcp_port: int = 0):
        self.port = port
        self.listener = socket.create_server((host, tcp_port))
        self.host, self.tcp_port = host, self.listener.getsockname()[1]
        self.closed = threading.Event()
        self.clients = 0

    @property
    def url(self) -> str:
        return f"rfc2217://{self.host}:{self.tcp_port}"

    def start(self) -> "PortServer":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def serve_forever(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            with client:
                self.clients += 1
                self._serve(client)

    def _serve(self, client: socket.socket) -> None:
        try:
            port = PortWithoutModemLines(self.port, timeout=0.05)
        except serial.SerialException as e:
            raise SemhilError(f"cannot open serial port {self.port} to serve it: {e}") from None
        with port:
            connection = _Connection(client)
            manager = PortManager(port, connection)
            done = threading.Event()
            reader = threading.Thread(target=self._port_to_network, args=(port, manager, connection, done), daemon=True)
            reader.start()
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # frames are small: no Nagle delay
            client.settimeout(0.2)
            while not (done.is_set() or self.closed.is_set()):
                try:
                    data = client.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not data:
                    break
                port.write(b"".join(manager.filter(data)))
            done.set()
            reader.join()  # before the port closes under it

    @staticmethod
    def _port_to_network(port, manager, connection, done: threading.Event) -> None:
        while not done.is_set():
            try:
                data = port.read(port.in_waiting or 1)
                if data:
                    connection.write(b"".join(manager.escape(data)))
            except (OSError, serial.SerialException):
                break  # the board went away, or the client did
        done.set()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()

    def __enter__(self) -> "PortServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
