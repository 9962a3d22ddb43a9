import json

import pytest
import torch

from codec_train.bundle import CONTENT_FILES, load_bundle, seal
from codec_train.train import TrainConfig, build_models
from semhil.errors import SemhilError


@pytest.fixture
def bundle_dir(tmp_path):
    config = TrainConfig()
    task, codec = build_models(config, (28, 28, 1), 10)
    (tmp_path / "config.json").write_text(json.dumps({**config.to_dict(), "data": {"n_classes": 10, "image_shape": [28, 28, 1]}}))
    torch.save(task.state_dict(), tmp_path / "task.pt")
    torch.save(codec.state_dict(), tmp_path / "codec.pt")
    (tmp_path / "device_graph.json").write_text(json.dumps({"layers": []}))
    (tmp_path / "metrics.json").write_text("{}")
    seal(tmp_path)
    return tmp_path


def test_sealed_bundle_loads_with_its_models(bundle_dir):
    bundle = load_bundle(bundle_dir)
    assert len(bundle.hash) == 16
    task, codec = bundle.load_models()
    assert codec.encoder.quantizer.centres.shape == (8,)


def test_hash_changes_with_content(bundle_dir):
    before = load_bundle(bundle_dir).hash
    (bundle_dir / "metrics.json").write_text('{"x": 1}')
    assert seal(bundle_dir) != before


@pytest.mark.parametrize("name", CONTENT_FILES)
def test_corrupted_file_is_named(bundle_dir, name):
    path = bundle_dir / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SemhilError, match=rf"{name} is corrupted.*delete"):
        load_bundle(bundle_dir)


def test_missing_file_and_not_a_bundle(bundle_dir, tmp_path):
    (bundle_dir / "codec.pt").unlink()
    with pytest.raises(SemhilError, match="codec.pt is missing"):
        load_bundle(bundle_dir)
    with pytest.raises(SemhilError, match="is not a bundle"):
        load_bundle(tmp_path / "nowhere")


def test_config_round_trip_and_digest():
    config = TrainConfig(train_images=100)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.digest() != TrainConfig().digest()


def test_a_device_graph_of_an_older_format_is_refused_before_any_c_is_generated(tmp_path):
    from semhil.build import generate_sources
    with pytest.raises(SemhilError, match="graph of bundle abc has format 1, this semhil reads format .*train the bundle again"):
        generate_sources({"format": 1, "layers": []}, "abc", "standalone", tmp_path / "model", tmp_path / "work")
    assert not (tmp_path / "model").exists()
