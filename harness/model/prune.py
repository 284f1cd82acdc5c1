"""Structured and unstructured magnitude pruning of TinyConv, as in the paper.

Structured: ``torch.nn.utils.prune.ln_structured`` ranks the conv's output channels (dim 0) by
their L1 (default), L2 or L-inf norm and zeroes the weakest ``round(amount * channels)``;
``prune.remove`` makes that permanent, and then the zeroed channels are physically removed so the
network really gets smaller (fewer FLOPs, less flash, faster on the MCU): a ``TinyConv(channels=k)``
keeps the surviving filters and the matching ``fc`` columns. TinyConv flattens NHWC, so channel c
of position (h, w) is fc column ``(h*W + w)*C + c``. ln_structured zeroes weights, not biases: a
pruned channel still outputs the constant ReLU(bias) at every position, so its contribution is
folded into the fc bias, which makes the smaller model compute exactly what the masked one does.

Unstructured: ``l1_unstructured`` zeroes the smallest ``amount`` of the conv weights and of the fc
weights (each layer at the same rate). For a single weight every Lp norm is |w|, so the criterion
only matters for the structured case. The fine-tuned copy keeps the mask while it trains (torch's
pruning re-parametrisation ``weight = weight_orig * weight_mask``), so pruned weights stay zero.

Fine-tuning follows the paper: ``FINETUNE_EPOCHS`` = 10 epochs at ``FINETUNE_LR`` = 1e-4.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune as tprune

from harness.errors import HarnessError

CRITERIA = {"l1": 1, "l2": 2, "linf": float("inf")}
THRESHOLDS = (10, 25, 40, 55, 70)  # percent
FINETUNE_EPOCHS = 10
FINETUNE_LR = 1e-4


def check_amount(amount: float) -> float:
    """A pruning fraction must lie in [0, 1] (0.4 = 40 % of the weights or channels)."""
    try:
        value = float(amount)
    except (TypeError, ValueError):
        raise HarnessError(f"pruning threshold {amount!r} is not a number (expected a fraction in 0..1)") from None
    if not 0.0 <= value <= 1.0:
        raise HarnessError(f"pruning threshold {amount!r} is outside 0..1 (use a fraction, e.g. 0.4 for 40 %)")
    return value


def check_criterion(criterion: str) -> float:
    if criterion not in CRITERIA:
        raise HarnessError(f"unknown pruning criterion {criterion!r}; valid: {', '.join(CRITERIA)}")
    return CRITERIA[criterion]


def channel_mask(model: nn.Module, amount: float, criterion: str = "l1") -> torch.Tensor:
    """Boolean mask of the conv output channels that survive structured pruning."""
    conv = copy.deepcopy(model.conv)
    tprune.ln_structured(conv, "weight", amount=check_amount(amount), n=check_criterion(criterion), dim=0)
    return conv.weight_mask.flatten(1).any(dim=1)


@torch.no_grad()
def masked_structured(model: nn.Module, amount: float, criterion: str = "l1") -> nn.Module:
    """A copy of ``model`` with whole conv filters zeroed by ln_structured (prune.remove applied)."""
    pruned = copy.deepcopy(model)
    tprune.ln_structured(pruned.conv, "weight", amount=check_amount(amount), n=check_criterion(criterion), dim=0)
    tprune.remove(pruned.conv, "weight")
    return pruned


@torch.no_grad()
def shrink(model: nn.Module, keep: torch.Tensor | None = None) -> nn.Module:
    """Physically remove the conv channels whose weights are all zero: a smaller TinyConv, same outputs."""
    from models.tinyconv import TinyConv

    weight = model.conv.weight
    if keep is None:
        keep = weight.flatten(1).ne(0).any(dim=1)
    keep = keep.to(torch.bool)
    channels = int(weight.shape[0])
    k = int(keep.sum())
    if k == 0:
        raise HarnessError("structured pruning removed every conv channel (lower the threshold)")
    h, w = model.out_hw
    fc_w = model.fc.weight.reshape(model.fc.out_features, h * w, channels)  # NHWC columns
    bias = model.conv.bias if model.conv.bias is not None else torch.zeros(channels)

    small = TinyConv(channels=k, num_classes=model.fc.out_features, dropout=model.dropout.p)
    small.conv.weight.copy_(weight[keep])
    small.conv.bias.copy_(bias[keep])
    small.fc.weight.copy_(fc_w[:, :, keep].reshape(model.fc.out_features, h * w * k))
    # A dropped channel is the constant ReLU(bias) everywhere (its weights are zero): fold it in.
    dropped = torch.relu(bias[~keep])
    small.fc.bias.copy_(model.fc.bias + (fc_w[:, :, ~keep] * dropped).sum(dim=(1, 2)))
    return small.train(model.training)


def structured(model: nn.Module, amount: float, criterion: str = "l1") -> nn.Module:
    """Structured pruning, physically applied: the smaller TinyConv (not fine-tuned)."""
    return shrink(masked_structured(model, amount, criterion))


def unstructured_masked(model: nn.Module, amount: float) -> nn.Module:
    """A copy with l1_unstructured masks on conv and fc weights (re-parametrised, masks kept)."""
    amount = check_amount(amount)
    pruned = copy.deepcopy(model)
    for layer in (pruned.conv, pruned.fc):
        tprune.l1_unstructured(layer, "weight", amount=amount)
    return pruned


def make_permanent(model: nn.Module) -> nn.Module:
    """Drop the pruning re-parametrisation: plain ``weight`` tensors with the zeros baked in."""
    for layer in model.modules():
        if tprune.is_pruned(layer) and hasattr(layer, "weight_mask"):
            tprune.remove(layer, "weight")
    return model


def unstructured(model: nn.Module, amount: float) -> nn.Module:
    """Unstructured pruning, permanent: same shapes, the weakest weights set to zero."""
    return make_permanent(unstructured_masked(model, amount))


def sparsity(model: nn.Module) -> dict:
    """Zero fraction of the prunable weights (conv + fc) and non-zero parameter counts."""
    weights = [model.conv.weight, model.fc.weight]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    params = list(model.parameters())
    return {
        "weight_sparsity": zeros / total if total else 0.0,
        "parameters": sum(p.numel() for p in params),
        "nonzero_parameters": sum(int((p != 0).sum()) for p in params),
    }
