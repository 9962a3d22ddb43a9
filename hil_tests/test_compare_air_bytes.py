"""`semhil compare --air-bytes` end to end on the native board: pipelines sized to one budget, trained,
protected, run bit-exact on the board, scored over BLE packets, tabled, written and plotted."""
import json
import os
import subprocess
import sys
from pathlib import Path

SEMHIL = Path(sys.executable).parent / "semhil"


def test_compare_at_equal_air_bytes_runs_end_to_end(tmp_path):
    out = tmp_path / "air"
    pipelines = ["semanticnn", "semanticnn+rs:8", "semanticnn+arq:2", "raw-feature+rs:16"]
    proc = subprocess.run([str(SEMHIL), "compare", "--air-bytes", "157", "--radio", "ble", "--preset", "tiny", "--board", "native",
                           "--images", "100", "--ber", "0,0.01", "--loss", "0.2", "--out", str(out),
                           *(arg for p in pipelines for arg in ("--pipeline", p))],
                          capture_output=True, text=True, timeout=1500, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "pipelines at 157 air bytes per image on ble" in proc.stdout
    rows = {row["pipeline"]: row for row in json.loads((out / "compare.json").read_text())["pipelines"]}
    assert list(rows) == pipelines
    for row in rows.values():
        assert row["air_bytes"] <= 157 and row["bit_exact_fraction"] == 1.0 and row["n_images"] == 100
        assert [(r["axis"], r["ber"], r["packet_loss"]) for r in row["results"]] == [("ber", 0.0, 0.0), ("ber", 0.01, 0.0),
                                                                                     ("packet_loss", 0.0, 0.2)]
        assert row["results"][0]["air_bytes_mean"] == row["air_bytes"]  # no retransmission on a clean link
    assert rows["semanticnn+rs:8"]["fec"]["rs_parity"] >= 8 and rows["semanticnn+rs:8"]["air_bytes"] == 157
    assert rows["semanticnn"]["results"][0]["accuracy"] > 0.5
    arq = rows["semanticnn+arq:2"]["results"][2]
    assert arq["retransmissions_mean"] > 0 and arq["air_bytes_mean"] > 157 and arq["packet_loss_rate"] < 0.2 ** 2
    assert (out / "report" / "report.html").is_file() and (out / "report" / "air_budget.png").is_file()
    assert len(list((out / "scored").glob("*.json"))) == len(pipelines)
