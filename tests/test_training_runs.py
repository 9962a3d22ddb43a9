"""Training as a whole: a killed training resumes to the same weights; torchrun with two processes."""
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.progress import Progress

from codec_train.checkpoint import Checkpoint
from codec_train.data import load_dataset
from codec_train.simulate import run_graph
from codec_train.train import PRESETS, float_symbols, train_bundle
from semhil.errors import SemhilError

CONFIG = dataclasses.replace(PRESETS["tiny"], train_images=256, task_epochs=2, stage1_epochs=2, stage2_epochs=2)


class Killed(Exception):
    pass


def test_killed_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    data = load_dataset("mnist5k")
    with Progress(disable=True) as progress:
        whole = train_bundle(CONFIG, tmp_path / "whole", progress, data)
        save = Checkpoint.save

        def save_then_die(self, phase, epoch, *args):
            save(self, phase, epoch, *args)
            if (phase, epoch) == ("stage1", 1):
                raise Killed

        monkeypatch.setattr(Checkpoint, "save", save_then_die)
        with pytest.raises(Killed):
            train_bundle(CONFIG, tmp_path / "killed", progress, data)
        monkeypatch.setattr(Checkpoint, "save", save)
        assert (tmp_path / "killed" / "checkpoint.pt").exists() and not (tmp_path / "killed" / "bundle.json").exists()
        with pytest.raises(SemhilError, match="add --resume"):
            train_bundle(CONFIG, tmp_path / "killed", progress, data)
        resumed = train_bundle(CONFIG, tmp_path / "killed", progress, data, resume=True)
    assert not (tmp_path / "killed" / "checkpoint.pt").exists()
    for name in ("task.pt", "codec.pt"):
        a, b = (torch.load(bundle.path / name, weights_only=True) for bundle in (whole, resumed))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_trained_device_half_sends_the_int8_symbols(tmp_path):
    """Training in the board's int8 formats: the float and the int8 device half agree on >= 99 % of symbols."""
    data = load_dataset("mnist5k")
    with Progress(disable=True) as progress:
        bundle = train_bundle(CONFIG, tmp_path / "b", progress, data)
    task, codec = bundle.load_models()
    assert bool(codec.encoder.input_quant.enabled) and bool(codec.encoder.conv_quant.enabled)
    int8_symbols, _ = run_graph(bundle.graph, data.x_test)
    assert np.mean(int8_symbols == float_symbols(task, codec, data.x_test)) >= 0.99


def test_torchrun_two_processes_train_one_bundle(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    semhil = shutil.which("semhil", path=str(Path(sys.executable).parent))
    assert torchrun and semhil, "torchrun and semhil are installed in the environment"
    out = tmp_path / "ddp"
    done = subprocess.run([torchrun, "--nproc-per-node", "2", "--no-python", semhil, "train", "--preset", "tiny",
                           "--train-images", "256", "--epochs", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stages"] == ["task", "stage1", "stage2"] and (out / "bundle.json").exists()
