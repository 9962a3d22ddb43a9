"""SemanticNN's codec: its shape from the task CNN's stem, and Feature-augmentation Learning on the frozen stem.

Stage 1 trains encoder + decoder as a denoising autoencoder: MSE between the clean stem feature
and its reconstruction after real bit flips. Stage 2 is task-oriented: cross-entropy of the frozen
tail on the reconstruction + distillation from the task CNN's own logits + alpha * L_div (KL of
the centres' usage from uniform) + gamma * L_XAI (eq. 3) + an MSE anchor to the clean feature.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress

from radio.channel import parse_channel
from semhil.errors import SemhilError

from .checkpoint import Checkpoint
from .distributed import shard
from .losses import attributions, distillation, usage_divergence, xai_asymmetry
from .models import CodecShape, SemanticCodec
from .phases import freeze_int8_stem, run_phase
from .qformat import fix_conv_format
from .tasks import SplitModel, stem_shape


def codec_shape(config, task: SplitModel, image_shape: tuple[int, int, int]) -> CodecShape:
    """The shape of a k4 s4 encoder (and its decoder) on the task's stem feature for (H, W, C) images."""
    if config.decoder_blocks < 2:
        raise SemhilError(f"decoder_blocks = {config.decoder_blocks}: the decoder needs at least 2 blocks to undo the encoder's /4")
    channels, h, w = stem_shape(task, image_shape)
    if h % 4 or w % 4 or h < 4 or w < 4:
        raise SemhilError(f"{config.base} turns {image_shape[0]}x{image_shape[1]} images into a {h}x{w} stem feature; the "
                          "encoder (k4 s4) and decoder need a multiple of 4: choose another --image-size")
    shape = CodecShape(feature_channels=channels, feature_size=(h, w), code_channels=config.code_channels or channels // 2,
                       bits=config.bits, decoder_channels=config.decoder_channels, decoder_blocks=config.decoder_blocks,
                       attention=config.attention, crop_ratio=config.crop_ratio)
    shape.sent_shape  # noqa: B018 - raises a clear error now if no crop of that ratio exists
    return shape


def build(config, task: SplitModel, image_shape: tuple[int, int, int], n_classes: int) -> SemanticCodec:
    return SemanticCodec(codec_shape(config, task, image_shape))


def train(task: SplitModel, codec: SemanticCodec, x: torch.Tensor, y: torch.Tensor, config, progress: Progress,
          checkpoint: Checkpoint, calibration: np.ndarray, fresh: bool = True) -> list[str]:
    """Stages 1 and 2 (those with epochs); `fresh`: the codec was not trained before (so its centres
    start from the encoder's output quantiles). Returns the stages trained."""
    stages = [name for name, epochs in (("stage1", config.stage1_epochs), ("stage2", config.stage2_epochs)) if epochs]
    if stages:
        train_codec(task, codec, x, y, config, progress, checkpoint, calibration, init_centres=fresh)
    return stages


def codec_loss(stage: int, task: SplitModel, codec: SemanticCodec, feature: torch.Tensor, teacher: torch.Tensor,
               labels: torch.Tensor, flips: torch.Tensor, ber: torch.Tensor, config) -> torch.Tensor:
    restored, received, soft = codec(feature, flips, ber)
    if stage == 1:
        return F.mse_loss(restored, feature)
    logits = task.tail(restored)
    loss = (config.beta_cls * F.cross_entropy(logits, labels) + config.kd_weight * distillation(logits, teacher)
            + config.alpha_div * usage_divergence(soft) + config.mse_weight * F.mse_loss(restored, feature))
    if config.gamma_xai > 0:  # on the first xai_batch samples: a regulariser, and double backward is costly
        k = config.xai_batch
        phi = attributions(lambda values: task.tail(codec.decode_values(values, ber[:k])), received[:k], labels[:k])
        loss = loss + config.gamma_xai * xai_asymmetry(phi, config.xai_lambda, config.xai_r)
    return loss


def train_codec(task: SplitModel, codec: SemanticCodec, x: torch.Tensor, y: torch.Tensor, config,
                progress: Progress, checkpoint: Checkpoint, calibration: np.ndarray, init_centres: bool = True) -> None:
    """Stage 1 then stage 2 on the frozen task CNN (either may have 0 epochs).

    The device half trains as the board will run it: the stem's weights are rounded to their int8
    values and its output to its int8 format (calibrated on `calibration`, uint8 images); stage 2
    also rounds the encoder conv's weights and output. So the float device half and the int8 one
    send the same symbols, bar float rounding in the encoder's tail."""
    stem_dec, features, teacher = freeze_int8_stem(task, x, calibration)
    with torch.no_grad():
        codec.encoder.input_quant.set_format(stem_dec)
        if init_centres:
            codec.encoder.quantizer.init_from(codec.encoder.analysis(features[:512]))
    channel = parse_channel(config.channel)
    n_bits = int(np.prod(codec.shape.sent_shape)) * codec.shape.bits
    rng = np.random.default_rng(config.seed + 1)
    codec.train()
    for stage, epochs in ((1, config.stage1_epochs), (2, config.stage2_epochs)):
        def loss_of_batch(idx, stage=stage):
            flips, ber = channel.sample(len(idx), n_bits, rng)  # the whole batch, so every process draws the same
            part = shard(torch.arange(len(idx)))
            flips = torch.from_numpy(flips[part.numpy()]).to(x.device)
            ber = torch.from_numpy(ber[part.numpy()]).float().to(x.device)
            i = idx[part]
            return codec_loss(stage, task, codec, features[i], teacher[i], y[i], flips, ber, config)

        if stage == 2 and epochs and not bool(codec.encoder.conv_quant.enabled):
            enc = codec.encoder
            fix_conv_format(enc.input_quant, enc.conv, enc.conv_quant, features[:config.calibration_images])
        if epochs:
            run_phase(f"stage{stage}", f"codec stage {stage}", epochs, len(x), config, {"task": task, "codec": codec},
                       list(codec.parameters()), loss_of_batch, rng, progress, checkpoint)
    codec.eval()
