"""Losses of Feature-augmentation Learning (stage 2) besides cross-entropy."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def usage_divergence(soft: torch.Tensor) -> torch.Tensor:
    """L_div: KL(p || uniform), p = mean soft assignment of all symbols to the centres (differentiable)."""
    p = soft.reshape(-1, soft.shape[-1]).mean(0)
    return (p * torch.log(p * len(p) + 1e-9)).sum()


def distillation(logits: torch.Tensor, teacher: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """KL from the frozen task CNN's own logits on the clean feature (soft targets)."""
    t = temperature
    return F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t


def attributions(edge, received: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Two-point integrated gradients (baseline 0, points 1/2 and 1) of the true class's logit with
    respect to the received code values, through the edge side `edge(values) -> logits`. Keeps the
    graph, so a loss on the attributions trains the encoder and decoder."""
    grads = torch.zeros_like(received)
    for a in (0.5, 1.0):
        point = a * received
        logit = edge(point).gather(1, labels[:, None]).sum()
        grads = grads + torch.autograd.grad(logit, point, create_graph=True)[0]
    return (received * grads / 2).flatten(1)


def xai_asymmetry(phi: torch.Tensor, lam: float, r: float) -> torch.Tensor:
    """Eq. 3: lam / sum(max(phi, 0)) + (1 - lam) * M / |{i: phi_i > 0}| - r, averaged over the batch.
    The count of positive attributions is made differentiable with a sigmoid at the attributions' scale."""
    scale = phi.detach().abs().mean() + 1e-12
    positive_mass = F.relu(phi).sum(1)
    positive_count = torch.sigmoid(phi / scale).sum(1)
    return (lam / (positive_mass + 1e-6) + (1 - lam) * phi.shape[1] / (positive_count + 1e-6) - r).mean()
