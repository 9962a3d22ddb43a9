"""Finding runs' results JSONs in files and folders, newest first. What cannot be read is named, not fatal."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SemhilError

RUN_KEYS = {"board", "bundle", "device", "results"}
EXPECTED = "give the files `semhil run --json` or `semhil sweep` write, or a folder of them (such as <bundle>/results)"


@dataclass
class FoundRuns:
    entries: list[tuple[Path, dict]] = field(default_factory=list)  # (results JSON, its run), newest first
    warnings: list[str] = field(default_factory=list)  # files skipped and runs that never finished, one line each

    @property
    def runs(self) -> list[dict]:
        return [run for _, run in self.entries]


def run_identity(run: dict, path: Path) -> tuple:
    """One run written to several files (a sweep's <run>.json and its runs/<run>/results.json, a --json
    copy) counts once."""
    if "run_id" in run:
        return ("run", run["run_id"])
    if "started" in run:
        return ("started", run.get("bundle_hash"), run["board"], run["backend"], run["started"])
    return ("file", path.resolve())


def _read(path: Path) -> tuple[dict | None, str | None]:
    """(the run in path, None), (None, why it is damaged), or (None, None) for JSON of another kind."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return None, f"{path} is not a results JSON (not JSON: {e}; cut short by a crash or a full disk?): skipped"
    except OSError as e:
        return None, f"cannot read {path} ({e.strerror}): skipped"
    if isinstance(data, dict) and RUN_KEYS.issubset(data):
        return data, None
    if path.name == "results.json" or (isinstance(data, dict) and "board" in data and "results" in data):
        missing = sorted(RUN_KEYS - set(data)) if isinstance(data, dict) else sorted(RUN_KEYS)
        return None, f"{path} is not a results JSON of `semhil run` (it lacks {', '.join(missing)}): skipped"
    return None, None


def _unfinished(folder: Path) -> str | None:
    """A run folder with an image log and no results.json: interrupted, or still running."""
    log = folder / "images.jsonl"
    if not log.is_file() or (folder / "results.json").exists():
        return None
    with log.open("rb") as f:
        logged = sum(1 for _ in f)
    return f"{folder}: a run that did not finish ({logged} image(s) logged, no results.json; interrupted, or still running)"


def _files_in(folder: Path) -> list[Path]:
    """The JSON files directly in folder (sweeps, --json copies) and every results.json below it."""
    return sorted({*folder.glob("*.json"), *folder.rglob("results.json")})


def find_runs(paths) -> FoundRuns:
    """The runs in each path (a results JSON, or a folder searched as _files_in says), newest first.
    Raises only when nothing at all was found."""
    found, seen = FoundRuns(), set()
    for path in map(Path, paths):
        if path.is_dir():
            files = _files_in(path)
            found.warnings += [w for log in sorted(path.rglob("images.jsonl")) if (w := _unfinished(log.parent))]
        else:
            files = [path]
        runs_here = 0
        for file in files:
            run, damage = _read(file)
            if damage:
                found.warnings.append(damage)
            if file == path and run is None and damage is None:
                found.warnings.append(f"{path} is not a results JSON of `semhil run` (it needs {', '.join(sorted(RUN_KEYS))}): skipped")
            if run is not None:
                runs_here += 1
                if (key := run_identity(run, file)) not in seen:
                    seen.add(key)
                    found.entries.append((file, run))
        if path.is_dir() and not runs_here:
            found.warnings.append(f"{path} has no results JSON in it")
    if not found.entries:
        raise SemhilError("no runs found: " + "; ".join(found.warnings) + f". {EXPECTED}")
    found.entries.sort(key=lambda entry: entry[1].get("started", 0), reverse=True)
    return found
