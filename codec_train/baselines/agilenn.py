"""AgileNN (Huang et al., MobiCom 2022), on the task stem's feature: a light extractor (the int8 stem,
then a k4 s4 conv) whose first 20 % of channels feed a local predictor on the device, while the rest
are quantized to 8 learned centroids and offloaded; the prediction is the local logits plus the remote
ones. Training skews the importance (integrated gradients) into the local channels.

Assumptions where the paper leaves room or our setting differs:
- the local predictor is one float32 dense layer on the local channels (a few hundred MACs), and its
  logits stay on the device: the board reports them to the harness as side bytes, not over the radio;
- the remote NN is a decoder (two x2 transposed convs) in front of the frozen task tail, anchored to
  the stem feature by an MSE term like SemanticNN's;
- importance is taken from the model being trained (two-point integrated gradients of the true class's
  logit) rather than a separately pretrained evaluator; the skewness loss asks the local channels for
  80 % of it, the disorder loss for each local channel to outweigh every remote one;
- training sees a clean channel: AgileNN assumes a reliable link.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import to_float
from ..export import conv_layer_after, export_stem, fixed_dec, float_tail
from ..layers import SoftQuantizer, upsampling_decoder
from ..losses import attributions, distillation
from ..models import Codec, WireShape, nearest_zero
from ..phases import two_step_training
from ..qformat import FakeQuant, int8_conv
from ..semantic_train import codec_shape

LOCAL_SHARE = 0.2      # share of the extractor's channels kept on the device
SKEW_TARGET = 0.8      # share of the importance the local channels should carry
SKEW_WEIGHT = 1.0
DISORDER_WEIGHT = 0.5


class AgileNN(Codec):
    def __init__(self, feature_channels: int, feature_size: tuple[int, int], channels: int, bits: int, width: int, n_classes: int):
        super().__init__()
        h, w = feature_size[0] // 4, feature_size[1] // 4
        self.n_local = max(1, round(LOCAL_SHARE * channels))
        self.shape = WireShape((h, w, channels - self.n_local), bits)
        self.side_bytes = 4 * n_classes  # the local logits, float32
        self.input_quant, self.conv_quant = FakeQuant(), FakeQuant()
        self.conv = nn.Conv2d(feature_channels, channels, 4, stride=4)
        self.local = nn.Linear(h * w * self.n_local, n_classes)  # on HWC-flattened local channels
        self.quantizer = SoftQuantizer(bits)
        remote = channels - self.n_local
        self.decoder = upsampling_decoder(remote, width, feature_channels)

    def extract(self, feature: torch.Tensor) -> torch.Tensor:
        """The extractor's output (NHWC) from the stem feature, in the int8 formats once training fixed them."""
        return int8_conv(self.input_quant, self.conv, self.conv_quant, feature).permute(0, 2, 3, 1)

    def place_levels(self, features: torch.Tensor) -> None:
        self.quantizer.init_from(self.extract(features[:512])[..., self.n_local:])

    def local_logits(self, extracted: torch.Tensor) -> torch.Tensor:
        return self.local(extracted[..., :self.n_local].flatten(1))

    def remote_feature(self, values: torch.Tensor) -> torch.Tensor:
        """Received remote values (NHWC) -> the restored stem feature."""
        return self.decoder(values.permute(0, 3, 1, 2))

    def forward(self, task, extracted: torch.Tensor, quantized: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, restored stem feature) over a clean channel."""
        remote = extracted[..., self.n_local:]
        restored = self.remote_feature(self.quantizer(remote)[0] if quantized else remote)
        return self.local_logits(extracted) + task.tail(restored), restored

    @property
    def zero_symbol(self) -> int:
        return nearest_zero(self.quantizer.centres)

    def float_symbols(self, task, images: np.ndarray) -> torch.Tensor:
        return self.quantizer(self.extract(task.stem(to_float(images)))[..., self.n_local:])[1]

    def float_side(self, task, images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = self.local_logits(self.extract(task.stem(to_float(images))))
        return logits.numpy().astype("<f4").view(np.uint8)

    def logits(self, task, symbols: torch.Tensor, ber: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        local = torch.from_numpy(side.numpy().copy().view("<f4").astype(np.float32))
        return local + task.tail(self.remote_feature(self.quantizer.centres[symbols.long()]))

    def device_layers(self, task, calibration_images: np.ndarray) -> list[dict]:
        """Stem, extractor conv, the local predictor (side bytes), the remote channels, the quantizer."""
        layers, feature = export_stem(task, calibration_images, fixed_dec(self.input_quant))
        conv = conv_layer_after(layers, "extractor.conv", self.conv, feature, fixed_dec(self.conv_quant))
        h, w, c = conv["out_shape"]
        local_channels, remote_channels = list(range(self.n_local)), list(range(self.n_local, c))
        weight = self.local.weight.detach().numpy().reshape(-1, h * w, self.n_local)
        local = {"op": "local_dense", "name": "local.predictor", "in_shape": [h, w, c], "channels": local_channels,
                 "in_dec": conv["out_dec"], "outputs": len(weight), "side_offset": self.shape.bytes_per_image,
                 "weight": [float(v) for v in weight.astype(np.float32).ravel()],
                 "bias": [float(v) for v in self.local.bias.detach().numpy().astype(np.float32)]}
        remote = {"op": "select_channels", "name": "remote.channels", "in_shape": [h, w, c], "out_shape": [h, w, len(remote_channels)],
                  "channels": remote_channels}
        return [*layers, conv, local, remote, *float_tail({**conv, "out_shape": remote["out_shape"]}, centres=self.quantizer.centres,
                                                          prefix="remote")]


def build(config, task, image_shape, n_classes: int) -> AgileNN:
    shape = codec_shape(config, task, image_shape)
    return AgileNN(shape.feature_channels, shape.feature_size, shape.code_channels, shape.bits, shape.decoder_channels, n_classes)


def importance_losses(task, codec: AgileNN, extracted: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(skewness, disorder) of the per-channel importance, |integrated gradients| summed over positions."""
    phi = attributions(lambda values: codec(task, values)[0], extracted, labels).view(extracted.shape)
    importance = phi.abs().sum(dim=(1, 2))  # (N, channels)
    share = importance / (importance.sum(1, keepdim=True) + 1e-12)
    local, remote = share[:, :codec.n_local], share[:, codec.n_local:]
    skewness = F.relu(SKEW_TARGET - local.sum(1)).mean()
    disorder = F.relu(remote.max(1).values - local.min(1).values).mean()
    return skewness, disorder


def loss(task, codec: AgileNN, feature: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, config, quantized: bool) -> torch.Tensor:
    """Float: the remote half reconstructs the feature (a warm-up); quantized: every loss of AgileNN."""
    extracted = codec.extract(feature)
    logits, restored = codec(task, extracted, quantized)
    if not quantized:
        return config.mse_weight * F.mse_loss(restored, feature)
    k = config.xai_batch
    skewness, disorder = importance_losses(task, codec, extracted[:k], labels[:k])
    return (config.beta_cls * F.cross_entropy(logits, labels) + config.kd_weight * distillation(logits, teacher)
            + config.mse_weight * F.mse_loss(restored, feature) + SKEW_WEIGHT * skewness + DISORDER_WEIGHT * disorder)


train = two_step_training("AgileNN", loss)  # on a clean channel
