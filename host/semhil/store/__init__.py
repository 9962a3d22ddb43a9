"""Where runs are written and how they are found again.

Every run writes into a folder of its own, named by its run id (UTC start time and a random
suffix), that nothing else writes into; `latest` beside it points at the newest finished run:

    <bundle>/results/<board>-<backend>/<run id>/results.json   what `semhil run` measured
                                               /images.jsonl   each image's code, as it arrived
    <bundle>/results/<board>-<backend>/latest -> <run id>
    runs/bench/kernels/<run id>/ (with --bundle: <bundle>/bench/kernels/)   `semhil bench kernels`

`find_runs` reads results JSONs back from files and folders: damaged or partial ones and runs that
never finished are named as warnings, not fatal.
"""
from .catalog import FoundRuns, find_runs, run_identity
from .run_dir import LATEST, mark_latest, new_run_dir, new_run_id, write_atomically

__all__ = ["FoundRuns", "LATEST", "find_runs", "mark_latest", "new_run_dir", "new_run_id", "run_identity", "write_atomically"]
