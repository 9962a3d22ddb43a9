"""The SemanticNN codec: sizes from real tensors (paper's Table 1), crop, gradients, losses, bases."""
import numpy as np
import pytest
import torch

from codec_train.crop import centre_crop, crop_box, reflect_restore
from codec_train.inspect import inspect_codec
from codec_train.layers import SoftQuantizer
from codec_train.losses import attributions, usage_divergence, xai_asymmetry
from codec_train.semantic_train import codec_loss
from codec_train.train import TrainConfig, build_models
from semhil.errors import SemhilError


@pytest.mark.parametrize("size,bytes_per_image,code", [(128, 768, [32, 8, 8]), (224, 2352, [32, 14, 14])])
def test_resnet50_sizes_match_table_1(size, bytes_per_image, code):
    info = inspect_codec("resnet50", size)
    assert info["stem_feature_shape"] == [64, size // 4, size // 4]
    assert info["code_shape"] == code and info["bytes_per_image"] == bytes_per_image
    assert info["device_macs"]["stem"] == 64 * (size // 2) ** 2 * 3 * 49


@pytest.mark.parametrize("size,side", [(128, 3), (224, 6)])
def test_crop_ratio_shrinks_the_code_as_algorithm_1_says(size, side):
    info = inspect_codec("resnet50", size, crop_ratio=0.2)
    assert info["sent_shape"] == [32, side, side]  # floor(sqrt(0.2) * H)
    assert info["bytes_per_image"] == 32 * side * side * 3 // 8


def test_mobilenetv2_and_small_inspect():
    assert inspect_codec("mobilenetv2", 128)["code_shape"] == [16, 16, 16]
    small = inspect_codec("small", 28, in_channels=1)
    assert small["bytes_per_image"] == 147 and small["sent_shape"] == [8, 7, 7]


def test_reflect_restore_on_small_maps():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    crop = centre_crop(x.permute(0, 2, 3, 1), 0.25).permute(0, 3, 1, 2)
    assert crop.shape[-2:] == (2, 2)
    assert torch.equal(reflect_restore(crop, 4, 4), torch.nn.ReflectionPad2d(1)(crop))
    big = torch.arange(9.0).view(1, 1, 3, 3)
    restored = reflect_restore(big, 8, 8)  # needs two reflection steps
    assert restored.shape[-2:] == (8, 8) and torch.equal(restored[..., 2:5, 2:5], big)
    one = reflect_restore(torch.ones(1, 2, 1, 1), 4, 4)
    assert torch.equal(one, torch.ones(1, 2, 4, 4))


def test_crop_that_cannot_be_made_is_a_clear_error():
    with pytest.raises(SemhilError, match="no crop of ratio 0.01 exists on a 4x4 code map"):
        crop_box(4, 4, 0.01)
    with pytest.raises(SemhilError, match="no crop of ratio"):
        build_models(TrainConfig(crop_ratio=0.01), (28, 28, 1), 10)


def test_image_size_the_model_cannot_take():
    with pytest.raises(SemhilError, match="multiple of 4"):
        build_models(TrainConfig(base="resnet50"), (36, 36, 3), 10)
    with pytest.raises(SemhilError, match="unknown base model"):
        build_models(TrainConfig(base="vgg"), (32, 32, 3), 10)


def _batch(config, image_shape=(28, 28, 1), n=8, seed=0):
    torch.manual_seed(seed)
    task, codec = build_models(config, image_shape, 10)
    task.eval().requires_grad_(False)  # frozen, as in train_codec
    h, w, c = image_shape
    x = torch.rand(n, c, h, w)
    labels = torch.randint(0, 10, (n,))
    feature = task.stem(x).detach()
    n_bits = int(np.prod(codec.shape.sent_shape)) * codec.shape.bits
    flips = torch.rand(n, n_bits) < 0.02
    return task, codec, feature, task.tail(feature).detach(), labels, flips, torch.full((n,), 0.02)


def test_stage2_trains_centres_encoder_and_decoder():
    config = TrainConfig(gamma_xai=0.1)
    task, codec, *batch = _batch(config)
    codec_loss(2, task, codec, *batch, config).backward()
    for name, param in [("centres", codec.encoder.quantizer.centres), ("encoder conv", codec.encoder.conv.weight),
                        ("encoder GDN", codec.encoder.gdn.gamma_raw), ("decoder", codec.decoder.blocks[0].up.weight),
                        ("attention", codec.decoder.blocks[0].attention.mlp[0].weight)]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_xai_term_has_gradients_of_its_own():
    config = TrainConfig()
    task, codec, feature, _, labels, flips, ber = _batch(config)
    _, received, _ = codec(feature, flips, ber)
    phi = attributions(lambda v: task.tail(codec.decode_values(v, ber)), received, labels)
    assert phi.shape == (len(labels), 8 * 7 * 7)
    xai_asymmetry(phi, 0.5, 0.0).backward()
    assert codec.encoder.conv.weight.grad.abs().sum() > 0


def test_usage_divergence_moves_toward_uniform():
    torch.manual_seed(0)
    config = TrainConfig()
    _, codec, feature, *_ = _batch(config, n=32)
    with torch.no_grad():
        codec.encoder.quantizer.init_from(codec.encoder.analysis(feature))
        codec.encoder.quantizer.centres.add_(torch.linspace(0, 2.0, 8))  # skew: most values near the first centres
    opt = torch.optim.Adam(codec.encoder.parameters(), 1e-2)

    def divergences():
        _, symbols, soft = codec.encode(feature)
        counts = torch.bincount(symbols.flatten(), minlength=8).float()
        hard = counts / counts.sum()
        return usage_divergence(soft), float((hard * torch.log(hard * 8 + 1e-9)).sum())

    soft_before, hard_before = divergences()
    for _ in range(100):
        opt.zero_grad()
        divergences()[0].backward()
        opt.step()
    soft_after, hard_after = divergences()
    assert soft_after.item() < 0.5 * soft_before.item()
    assert hard_after < 0.75 * hard_before


def test_channel_flips_move_symbols_to_hamming_neighbours():
    config = TrainConfig()
    _, codec, feature, *_ = _batch(config)
    value, symbols, _ = codec.encode(feature)
    flips = torch.zeros(len(feature), symbols[0].numel() * 3, dtype=torch.bool)
    flips[:, 0] = True  # the most significant bit of the first symbol
    received = codec.encoder.quantizer.corrupt(value, symbols, flips)
    centres = codec.encoder.quantizer.centres
    first = symbols.reshape(len(feature), -1)[:, 0]
    assert torch.allclose(received.reshape(len(feature), -1)[:, 0], centres[first ^ 4])
    assert torch.equal(received.reshape(len(feature), -1)[:, 1:], value.reshape(len(feature), -1)[:, 1:])


def test_a_hit_symbol_sends_the_decoder_gradient_to_the_centre_it_landed_on():
    quantizer = SoftQuantizer(bits=3)

    def gradients(flips):
        quantizer.zero_grad()
        y = torch.tensor([[-0.9, 0.9]], requires_grad=True)  # nearest centres 0 and 7 of linspace(-1, 1, 8)
        value, symbols, _ = quantizer(y)
        received = quantizer.corrupt(value, symbols, torch.tensor([flips]))
        received.sum().backward()
        return received.detach(), y.grad, quantizer.centres.grad.clone()

    clean = gradients([False] * 6)
    received, y_grad, centre_grad = gradients([True] + [False] * 5)  # symbol 0 -> 4, symbol 7 clean
    assert torch.allclose(received, quantizer.centres.detach()[[4, 7]])
    assert centre_grad[4] - clean[2][4] > 0.9  # the landing centre takes the hit's gradient
    assert torch.equal(y_grad, clean[1])  # the encoder's path is as if clean (straight through)


@pytest.mark.parametrize("base", ["resnet50", "mobilenetv2"])
def test_paper_bases_run_a_training_step_on_cpu(base):
    config = TrainConfig(base=base, gamma_xai=0.1)
    task, codec, *batch = _batch(config, image_shape=(32, 32, 3), n=4)
    opt = torch.optim.Adam(codec.parameters(), 1e-3)
    before = [p.detach().clone() for p in codec.parameters()]
    loss = codec_loss(2, task, codec, *batch, config)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, codec.parameters(), strict=True))


def test_decoder_blocks_are_configurable():
    config = TrainConfig(decoder_blocks=4)
    task, codec, feature, teacher, labels, flips, ber = _batch(config)
    assert len(codec.decoder.blocks) == 4
    restored, _, _ = codec(feature, flips, ber)
    assert restored.shape == feature.shape
    with pytest.raises(SemhilError, match="at least 2 blocks"):
        build_models(TrainConfig(decoder_blocks=1), (28, 28, 1), 10)
