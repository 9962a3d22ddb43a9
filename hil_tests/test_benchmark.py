"""Per-image round trip through pytest-benchmark (host wall clock: `--benchmark-json` keeps it), with
the device's own latency of the same inferences in its extra_info."""
import itertools

import numpy as np

from codec_train.data import load_dataset
from semhil.session import device_latency


def test_round_trip_and_device_latency(benchmark, dut, board_config, bundle):
    images = itertools.cycle(load_dataset("mnist5k").x_test[:20])
    timer_hz = int(dut.info()["timer_hz"])
    ticks = []

    def infer_one():
        ticks.append(dut.infer(next(images).tobytes()).ticks)

    benchmark.pedantic(infer_one, rounds=30, warmup_rounds=5)
    latency = device_latency(np.array(ticks[5:], float), board_config, timer_hz)
    benchmark.extra_info.update({"board": board_config.name, "device_latency_unit": board_config.latency_unit,
                                 "device_latency_median": float(np.median(latency)),
                                 "device_latency_p95": float(np.percentile(latency, 95))})
    assert len(ticks) == 35 and np.all(latency > 0)
    if board_config.latency_unit == "ns":  # the native board: its compute is part of the host's round trip
        assert np.median(latency) / 1e9 < benchmark.stats.stats.median
