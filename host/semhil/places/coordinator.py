"""The labgrid coordinator as semhil uses it, through labgrid's client session: places, their
holders, acquire and release. Holders are named as labgrid names them, HOST/USER."""
from __future__ import annotations

import asyncio
import difflib
import logging
import os
import time
from contextlib import contextmanager

from ..errors import SemhilError

DEFAULT_PORT = 20408


class PlaceError(SemhilError):
    """A place that cannot be used: unknown, without a serial port, for another board, coordinator down."""


class PlaceHeld(PlaceError):
    """Someone else holds the place."""


def coordinator_address(address: str | None = None) -> str:
    """--coordinator, else LG_COORDINATOR (labgrid's own variable), else labgrid's default."""
    return address or os.environ.get("LG_COORDINATOR") or f"127.0.0.1:{DEFAULT_PORT}"


@contextmanager
def _quiet_root_logger():
    """labgrid's client logs a failed connection on the root logger; semhil says it in one line of its own."""
    class DropAll(logging.Filter):
        def filter(self, record):
            return False
    root, drop = logging.getLogger(), DropAll()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


# address -> [session, users]: the coordinator tells clients apart by their connection, which gRPC
# shares between the channels of one process, so one process has one session per coordinator
_sessions: dict[str, list] = {}


class Coordinator:
    """A client session with the coordinator at `address` (HOST:PORT)."""

    def __init__(self, address: str | None = None):
        from labgrid.remote.client import Error as LabgridError, start_session
        self.address = coordinator_address(address)
        if self.address not in _sessions:
            with _quiet_root_logger():
                try:
                    _sessions[self.address] = [start_session(self.address), 0]
                except (LabgridError, OSError) as e:
                    raise PlaceError(f"the labgrid coordinator at {self.address} does not answer ({e}); start it there "
                                     f"(`labgrid-coordinator --listen {self.address}`) or name the right one with "
                                     "--coordinator HOST:PORT or LG_COORDINATOR") from None
        _sessions[self.address][1] += 1
        self.session = _sessions[self.address][0]
        self.closed = False
        self.holder = f"{self.session.gethostname()}/{self.session.getuser()}"

    def _wait(self, awaitable):
        return self.session.loop.run_until_complete(awaitable)

    def poll(self, seconds: float = 0.1) -> None:
        """Let the session take in the coordinator's updates for a while."""
        self._wait(asyncio.sleep(seconds))

    def place(self, name: str):
        places = self.session.places
        if name not in places:
            hint = difflib.get_close_matches(name, sorted(places), n=1)
            raise PlaceError(f"there is no labgrid place {name!r} at the coordinator {self.address}"
                             + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + f"; its places: {', '.join(sorted(places)) or 'none'} (create one: labgrid-client -p NAME create)")
        return places[name]

    def held_message(self, place) -> str:
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(place.changed))
        if place.acquired == self.holder:
            return (f"place {place.name} is held by {place.acquired} (you, on this computer) since {since}: another run of "
                    f"yours has it, or one ended without releasing it (then: labgrid-client -p {place.name} release)")
        return (f"place {place.name} is held by {place.acquired} since {since}; wait until they release it "
                f"(labgrid-client -p {place.name} who)")

    def resources(self, place) -> dict[tuple[str, str], object]:
        """The exporters' resources the place matches: (name, class) -> labgrid ResourceEntry."""
        found = {}
        for exporter, groups in self.session.resources.items():
            for group_name, group in groups.items():
                for resource_name, resource in group.items():
                    match = place.getmatch((exporter, group_name, resource.cls, resource_name))
                    if match is not None:
                        found[(match.rename or resource_name, resource.cls)] = resource
        return found

    def acquire(self, name: str) -> None:
        import grpc
        from labgrid.remote.generated import labgrid_coordinator_pb2
        place = self.place(name)
        if place.acquired:
            raise PlaceHeld(self.held_message(place))
        try:
            self._wait(self.session.stub.AcquirePlace(labgrid_coordinator_pb2.AcquirePlaceRequest(placename=name)))
            self._wait(self.session.sync_with_coordinator())
        except grpc.aio.AioRpcError as e:
            self._wait(self.session.sync_with_coordinator())
            place = self.place(name)
            if place.acquired and place.acquired != self.holder:
                raise PlaceHeld(self.held_message(place)) from None
            raise PlaceError(f"cannot acquire place {name}: {e.details()}") from None

    def release(self, name: str, holder: str | None = None) -> None:
        """Release the place; with holder, only if that holder still has it."""
        import grpc
        from labgrid.remote.generated import labgrid_coordinator_pb2
        request = labgrid_coordinator_pb2.ReleasePlaceRequest(placename=name, **({"fromuser": holder} if holder else {}))
        try:
            self._wait(self.session.stub.ReleasePlace(request))
            self._wait(self.session.sync_with_coordinator())
        except grpc.aio.AioRpcError as e:
            raise PlaceError(f"cannot release place {name}: {e.details()}") from None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        _sessions[self.address][1] -= 1
        if _sessions[self.address][1]:
            return
        del _sessions[self.address]
        try:
            self._wait(self.session.stop())
            self._wait(self.session.close())
        except Exception:  # noqa: BLE001 - a session to a coordinator that went away closes with errors; nothing to keep
            pass

    def __enter__(self) -> "Coordinator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
