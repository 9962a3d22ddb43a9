"""The backstop for a held place: labgrid never expires an acquired place, so a holder that is killed
(SIGKILL, a crashed pytest worker) would keep it until someone kicks it out by hand. semhil starts this
process beside every place it acquires, in a session of its own (Ctrl-C does not reach it), reading a
pipe from the holder: the holder writes `released` once it has released the place itself; when the pipe
closes without that word, the holder is gone and the keeper releases the place in the holder's name.

    python -m semhil.places.keeper COORDINATOR PLACE HOLDER
"""
from __future__ import annotations

import subprocess
import sys
import time

RELEASED = b"released"
ATTEMPTS = 5


def start_keeper(address: str, place: str, holder: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "semhil.places.keeper", address, place, holder], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, start_new_session=True)


def stop_keeper(keeper: subprocess.Popen) -> None:
    """The holder released the place itself: the keeper has nothing to do."""
    try:
        keeper.stdin.write(RELEASED)
        keeper.stdin.close()
    except OSError:
        pass  # the keeper died already
    try:
        keeper.wait(10)
    except subprocess.TimeoutExpired:
        keeper.kill()


def main(argv: list[str]) -> int:
    from .coordinator import Coordinator, PlaceError
    address, place, holder = argv
    if sys.stdin.buffer.read() == RELEASED:
        return 0
    for attempt in range(ATTEMPTS):
        try:
            with Coordinator(address) as coordinator:
                coordinator.release(place, holder)
            print(f"semhil: released labgrid place {place}: its holder {holder} ended without releasing it", file=sys.stderr)
            return 0
        except PlaceError as e:
            if attempt == ATTEMPTS - 1:
                print(f"semhil: could not release labgrid place {place} after its holder {holder} ended ({e}); "
                      f"release it by hand: labgrid-client -x {address} -p {place} release --kick", file=sys.stderr)
                return 1
            time.sleep(2)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
