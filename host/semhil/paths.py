"""Where things are in a semhil checkout (the package is installed editable from it)."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOARDS_DIR = REPO / "boards"
DEVICE_DIR = REPO / "device"
RUNS_DIR = REPO / "runs"
