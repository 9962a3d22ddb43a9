"""Building blocks of the SemanticNN codec: GDN, the soft-to-hard quantizer, BER attention."""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

BER_SCALE = 0.05  # the decoder sees ber / BER_SCALE, so the paper's 0..5 % range maps to 0..1
SOFTNESS = 0.3  # temperature of the soft assignment, in squared centre spacings: sharp enough to track the hard usage


class GDN(nn.Module):
    """Generalized divisive normalization: y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2).

    inverse=True gives IGDN (multiply instead of divide), used by the decoder.
    beta and gamma are kept positive by squaring their raw parameters.
    """

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta_raw = nn.Parameter(torch.ones(channels))
        self.gamma_raw = nn.Parameter(torch.eye(channels) * 0.3162 + 0.01)

    def beta(self) -> torch.Tensor:
        return self.beta_raw ** 2 + 1e-6

    def gamma(self) -> torch.Tensor:
        return self.gamma_raw ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # beta_i + sum_j gamma_ij x_j^2 as a matmul over the channels, on a channels-last view: the activations
        # here are channels-last (to_float's permute), where this reads x without a copy and runs several times
        # faster on a CPU than the same sum as a 1x1 convolution (training's forward and backward take as long).
        norm = F.linear((x * x).movedim(1, -1), self.gamma(), self.beta()).movedim(-1, 1)
        return x * torch.sqrt(norm) if self.inverse else x / torch.sqrt(norm)


class SoftQuantizer(nn.Module):
    """Nearest of 2^bits learnable centres, hard in the forward pass.

    Backward: straight-through to the encoder (identity gradient), plus a soft assignment
    (softmax over negative squared distances) through which the centres receive gradients and the
    usage distribution is differentiable.
    """

    def __init__(self, bits: int = 3):
        super().__init__()
        self.bits = bits
        self.centres = nn.Parameter(torch.linspace(-1.0, 1.0, 2 ** bits))

    @torch.no_grad()
    def init_from(self, y: torch.Tensor) -> None:
        k = 2 ** self.bits
        q = (torch.arange(k, dtype=y.dtype) + 0.5) / k
        self.centres.copy_(torch.quantile(y.flatten()[:100_000], q))

    def assign(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (hard symbol index, soft assignment probabilities over the centres)."""
        c = self.centres
        d2 = (y.unsqueeze(-1) - c) ** 2
        gap = (c.max() - c.min()).detach() / (len(c) - 1) + 1e-6
        return d2.argmin(-1), torch.softmax(-d2 / (SOFTNESS * gap ** 2), dim=-1)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (value, symbols, soft assignment): the value is the nearest centre, with the
        straight-through gradient to y and the soft assignment's gradient to the centres."""
        symbols, soft = self.assign(y)
        soft_value = (soft * self.centres).sum(-1)
        value = self.centres[symbols].detach() + (y - y.detach()) + (soft_value - soft_value.detach())
        return value, symbols, soft

    def corrupt(self, value: torch.Tensor, symbols: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
        """The value after the channel: flips (N, n_symbols * bits) bool, most significant bit of
        each symbol first, moves a symbol to a Hamming neighbour.

        The encoder's gradient passes as if clean (straight through). Where a symbol was hit, the
        centre it landed on gets the decoder's gradient: the centres learn where errors land and
        Hamming neighbours move closer where a flip costs most (channel-optimised quantisation).
        Without it, the BER-aware decoder lets the code grow fragile: at 5 % BER, 1 point worse."""
        weights = 1 << torch.arange(self.bits - 1, -1, -1, device=symbols.device)
        mask = (flips.view(*symbols.shape, self.bits).long() * weights).sum(-1)
        received = symbols ^ mask
        return value + (self.centres[received] - self.centres[symbols].detach()) * (mask != 0)


class BerAttention(nn.Module):
    """Channel attention conditioned on the BER: (global pool || BER) -> MLP -> 2 sigmoid -> rescale.

    The last layer starts near zero, so each block starts close to the identity (scale 1) and learns
    how far to depart from it; a plain sigmoid would start every block by halving its input."""

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(channels // 2, 4)
        self.mlp = nn.Sequential(nn.Linear(channels + 1, hidden), nn.ReLU(), nn.Linear(hidden, channels))
        with torch.no_grad():
            self.mlp[2].weight.mul_(0.1)
            self.mlp[2].bias.zero_()

    def forward(self, x: torch.Tensor, ber: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))
        scale = 2 * torch.sigmoid(self.mlp(torch.cat([pooled, (ber / BER_SCALE).view(-1, 1)], dim=1)))
        return x * scale.view(*scale.shape, 1, 1)


def upsampling_decoder(c_in: int, width: int, c_out: int, after_first: nn.Module | None = None) -> nn.Sequential:
    """The baselines' decoder: two x2 transposed convs with PReLU (undoing a k4 s4 encoder), optionally
    a block after the first, then a conv to the stem's channels and a Softplus (the feature is a ReLU output)."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, width, 2, stride=2), nn.PReLU(width, init=0.25), *([after_first] if after_first else []),
        nn.ConvTranspose2d(width, width, 2, stride=2), nn.PReLU(width, init=0.25),
        nn.Conv2d(width, c_out, 3, padding=1), nn.Softplus(beta=4.0))
