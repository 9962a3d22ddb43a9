"""The nnom backend, compiled for this computer against the NNoM checkout at NNOM_HOME, gives the
simulator's codes bit for bit."""
import subprocess

import numpy as np
import pytest

from semhil.backends import nnom as nnom_backend
from semhil.build import COMMON_FLAGS, _nnom_includes, _nnom_objects, generate_sources, nnom_home
from semhil.errors import SemhilError
from semhil.paths import DEVICE_DIR
from test_standalone_kernels import CASES, HERE, needs_nnom, random_case, run_compiled


@needs_nnom
@pytest.mark.parametrize("base,image_shape,crop_ratio", CASES)
def test_nnom_backend_equals_simulator(tmp_path, base, image_shape, crop_ratio):
    graph, images, _, expected = random_case(base, image_shape, crop_ratio)
    home = nnom_home()
    model_dir = generate_sources(graph, "0123456789abcdef", "nnom", tmp_path / "model", tmp_path / "sizer")
    sources = [HERE / "kernel_driver.c", model_dir / "model.c", DEVICE_DIR / "kernels" / "kernels.c", DEVICE_DIR / "nnom" / "nnom_port.c"]
    includes = [f"-I{d}" for d in (model_dir, DEVICE_DIR / "kernels", DEVICE_DIR / "core")] + _nnom_includes(home)
    objects = _nnom_objects("gcc", [], home, tmp_path / "sizer" / "nnom-host")
    exe = tmp_path / "driver"
    subprocess.run(["gcc", *COMMON_FLAGS, *includes, *map(str, sources), *map(str, objects), "-o", str(exe), "-lm"], check=True)
    assert np.array_equal(run_compiled(exe, images, graph["code_bytes"]), expected)


def test_nnom_home_missing_or_wrong_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.delenv("NNOM_HOME", raising=False)
    with pytest.raises(SemhilError, match="needs NNoM.*make nnom"):
        nnom_home()
    monkeypatch.setenv("NNOM_HOME", str(tmp_path))
    with pytest.raises(SemhilError, match="is not an NNoM checkout"):
        nnom_home()


def test_padding_nnom_cannot_express_is_named():
    layer = {"name": "stem.0", "in_shape": [8, 8, 1], "out_shape": [10, 10, 4], "kernel": [3, 3], "stride": [1, 1], "padding": [2, 2]}
    with pytest.raises(SemhilError, match="layer stem.0: padding .* use the standalone backend"):
        nnom_backend._padding_type(layer)


def tree_state(folder) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@needs_nnom
def test_nothing_is_built_inside_nnom_home(tmp_path):
    """CI points NNOM_HOME at a read-only shared copy: objects and the sizer go to the build folder."""
    home = nnom_home()
    before = tree_state(home)
    graph = random_case(*CASES[0])[0]
    generate_sources(graph, "0123456789abcdef", "nnom", tmp_path / "model", tmp_path / "sizer")
    assert _nnom_objects("gcc", [], home, tmp_path / "objects") and any((tmp_path / "sizer").rglob("*.o"))
    assert tree_state(home) == before
