"""Per-image round trip through pytest-benchmark (host wall clock: `--benchmark-json` keeps it), with
the device's own latency of the same inferences (all of it, and after the image's last byte) in its extra_info."""
import itertools

import numpy as np

from codec_train.data import load_dataset
from semhil.session import device_latency


def test_round_trip_and_device_latency(benchmark, dut, board_config, bundle):
    images = itertools.cycle(load_dataset("mnist5k").x_test[:20])
    timer_hz = int(dut.info()["timer_hz"])
    ticks, after = [], []

    def infer_one():
        result = dut.infer(next(images).tobytes())
        ticks.append(result.ticks)
        after.append(result.ticks_after_last_byte)

    benchmark.pedantic(infer_one, rounds=30, warmup_rounds=5)
    latency = device_latency(np.array(ticks[5:], float), board_config, timer_hz)
    latency_after = device_latency(np.array(after[5:], float), board_config, timer_hz)
    benchmark.extra_info.update({"board": board_config.name, "device_latency_unit": board_config.latency_unit,
                                 "device_latency_median": float(np.median(latency)),
                                 "device_latency_p95": float(np.percentile(latency, 95)),
                                 "device_latency_after_last_byte_median": float(np.median(latency_after))})
    assert len(ticks) == 35 and np.all(latency > 0)
    assert np.all(latency_after > 0) and np.all(latency_after <= latency)
    if board_config.latency_unit == "ns":  # the native board: its compute is part of the host's round trip
        assert np.median(latency) / 1e9 < benchmark.stats.stats.median
