"""`semhil train`, `eval` and `inspect` from the command line, on small real runs."""
import json
import subprocess
import sys


def semhil(*args):
    return subprocess.run([sys.executable, "-c", "from semhil.cli import main; main()", *args], capture_output=True, text=True)


def test_inspect_prints_table_1_sizes():
    done = semhil("inspect", "--base", "resnet50", "--image-size", "224", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["bytes_per_image"] == 2352 and info["code_shape"] == [32, 14, 14]


def test_train_stage1_then_stage2_then_eval(tmp_path):
    stage1 = tmp_path / "stage1"
    done = semhil("train", "--preset", "tiny", "--train-images", "256", "--epochs", "1", "--stage", "1", "--out", str(stage1))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((stage1 / "metrics.json").read_text())["stages"] == ["task", "stage1"]
    stage2 = tmp_path / "stage2"
    done = semhil("train", "--preset", "tiny", "--train-images", "256", "--epochs", "1", "--stage", "2", "--xai",
                  "--init", str(stage1), "--out", str(stage2))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((stage2 / "metrics.json").read_text())["stages"] == ["task", "stage1", "stage2"]
    result_path = tmp_path / "eval.json"
    done = semhil("eval", str(stage2), "--ber", "0,0.05", "--json", str(result_path))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(result_path.read_text())
    assert [row["ber"] for row in result["results"]] == [0.0, 0.05] and result["n_images"] == 1000
    assert result["backend"] == "int8" and 0.0 <= result["results"][0]["accuracy"] <= 1.0
    done = semhil("eval", str(stage2), "--channel", "ge:0.01,8", "--float", "--json", str(result_path))
    assert done.returncode == 0, done.stdout + done.stderr
    row = json.loads(result_path.read_text())["results"][0]
    assert row["channel"] == "gilbert-elliott" and row["channel_params"]["mean_burst_length"] == 8 and row["ber"] == 0.01


def test_train_bad_input(tmp_path):
    cases = [
        (["--stage", "2"], "give it with --init"),
        (["--dataset", "cifar10"], "cifar10:<dir>"),
        (["--dataset", "cifar10:/no/such/dir"], "/no/such/dir"),
        (["--crop-ratio", "0.01"], "no crop of ratio 0.01"),
        (["--channel", "iid:0.7"], "BER 0.7"),
        (["--base", "resnet50", "--dataset", "digits"], "multiple of 4"),
    ]
    for args, message in cases:
        done = semhil("train", "--preset", "tiny", "--epochs", "1", "--out", str(tmp_path / "x"), *args)
        assert done.returncode != 0 and message in done.stdout + done.stderr, (args, done.stdout + done.stderr)
        assert "Traceback" not in done.stdout + done.stderr
