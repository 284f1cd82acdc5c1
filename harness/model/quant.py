"""The project's own fake quantization: PTQ and QAT of TinyConv at 2..8 bits, symmetric or asymmetric.

Why our own and not torch.ao: the paper quantizes to 2, 4 and 6 bits, which the torch.ao int8
backends do not run, and we want the simulated arithmetic to match what the exported int8 model
computes. Each wrapped layer (Conv2d, Linear) in its forward pass

- quantizes its input activation with a range observed during calibration (running min/max),
- quantizes its weight at ``bits`` (per tensor, or per output channel as an option) from the
  weight's own range,
- quantizes its bias to int32 at scale ``s_in * s_w`` (the TFLite convention, so the bias adds no
  error beyond what the integer model has),
- computes on the dequantized values, i.e. exactly ``s_in * s_w * (integer accumulator)``.

Activations use ``act_bits`` = 8 by default, whatever the weight bit width: the exported model
and every on-device runtime compute on int8 activations, so a 2-bit variant is 2-bit weights with
int8 activations, and its PyTorch accuracy is the accuracy of what runs on the device (set
``act_bits`` lower to study narrower activations; no runtime here executes those).

Rounding and clamping pass gradients straight through (STE): identity inside the clamp range,
zero outside, so quantization-aware training (QAT) can fine-tune the float weights under the grid.

Grids: symmetric uses ``[-(2^(b-1)-1), 2^(b-1)-1]`` with zero point 0 (so 2 bits is ternary, and
int8 is TFLite's restricted weight range); asymmetric uses ``[-2^(b-1), 2^(b-1)-1]`` with a zero
point that makes 0.0 exactly representable. Either way a tensor has at most 2^b distinct values.

Recipes (recorded in every variant's metadata): PTQ = calibrate the activation ranges on
``PTQ_CALIBRATION_SAMPLES`` training inputs, no training. QAT = start from the float32 baseline,
calibrate the same way, then fine-tune ``QAT_EPOCHS`` = 5 epochs at ``QAT_LR`` = 5e-4 with the
observers following the activations (exponential moving average); a short fine-tune keeps the
whole sweep fast and is enough for the weights to settle on the grid.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from harness.errors import HarnessError

BITS = (2, 4, 6, 8)
QAT_EPOCHS = 5
QAT_LR = 5e-4
PTQ_CALIBRATION_SAMPLES = 2000
EMA_MOMENTUM = 0.05


def check_bits(bits: int) -> int:
    """Validate a bit width (2..8): the integer grids and the int8 export only make sense there."""
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 8:
        raise HarnessError(f"bit width {bits!r} is outside 2..8 (quantization supports 2 to 8 bits)")
    return bits


class _RoundSTE(torch.autograd.Function):
    """round() forward, identity backward: the straight-through estimator."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D401
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return _RoundSTE.apply(x)


def _broadcast(t: torch.Tensor, like: torch.Tensor, axis: int | None) -> torch.Tensor:
    """Shape a per-channel scale/zero point so it broadcasts along ``axis`` of ``like``."""
    if axis is None or t.dim() == 0:
        return t
    shape = [1] * like.dim()
    shape[axis] = -1
    return t.reshape(shape)


class _Quantizer:
    """Shared arithmetic of the two grids; subclasses choose the grid and how to fit it to a range."""

    symmetric: bool

    def __init__(self, bits: int):
        self.bits = check_bits(bits)

    qmin: int
    qmax: int

    def params_from_range(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def params(self, x: torch.Tensor, axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point covering ``x`` (per tensor, or per slice along ``axis``)."""
        x = x.detach()
        if axis is None:
            lo, hi = x.min(), x.max()
        else:
            flat = x.transpose(0, axis).reshape(x.shape[axis], -1)
            lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
        return self.params_from_range(lo, hi)

    def quantize(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                 axis: int | None = None) -> torch.Tensor:
        """Integer codes (as an int32 tensor) of ``x`` on this grid."""
        s, z = _broadcast(scale, x, axis), _broadcast(zero_point, x, axis)
        return torch.clamp(torch.round(x / s) + z, self.qmin, self.qmax).to(torch.int32)

    def dequantize(self, q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                   axis: int | None = None) -> torch.Tensor:
        s, z = _broadcast(scale, q, axis), _broadcast(zero_point, q, axis)
        return (q.to(s.dtype) - z) * s

    def fake(self, x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
             axis: int | None = None) -> torch.Tensor:
        """Quantize then dequantize, differentiable through the STE (zero gradient where clamped)."""
        s, z = _broadcast(scale, x, axis), _broadcast(zero_point, x, axis)
        q = torch.clamp(round_ste(x / s) + z, self.qmin, self.qmax)
        return (q - z) * s


class SymmetricQuantizer(_Quantizer):
    """Zero point 0, grid ``[-(2^(b-1)-1), 2^(b-1)-1]``, scale = max|x| / qmax."""

    symmetric = True

    def __init__(self, bits: int):
        super().__init__(bits)
        self.qmax = 2 ** (self.bits - 1) - 1
        self.qmin = -self.qmax

    def params_from_range(self, lo, hi):
        amax = torch.maximum(lo.abs(), hi.abs())
        scale = torch.clamp(amax / self.qmax, min=1e-8)
        return scale, torch.zeros_like(scale)


class AsymmetricQuantizer(_Quantizer):
    """Grid ``[-2^(b-1), 2^(b-1)-1]`` stretched over [min, max] (widened to contain 0); integer zero point."""

    symmetric = False

    def __init__(self, bits: int):
        super().__init__(bits)
        self.qmin = -(2 ** (self.bits - 1))
        self.qmax = 2 ** (self.bits - 1) - 1

    def params_from_range(self, lo, hi):
        lo = torch.clamp(lo, max=0.0)
        hi = torch.clamp(hi, min=0.0)
        scale = torch.clamp((hi - lo) / (self.qmax - self.qmin), min=1e-8)
        zero_point = torch.clamp(torch.round(self.qmin - lo / scale), self.qmin, self.qmax)
        return scale, zero_point


@dataclass(frozen=True)
class QuantConfig:
    """How to quantize a model: bit width, grid, and per-channel weights or not."""

    bits: int = 8
    symmetric: bool = True
    per_channel: bool = False
    act_bits: int = 8

    def __post_init__(self) -> None:
        check_bits(self.bits)
        check_bits(self.act_bits)

    def quantizer(self) -> _Quantizer:
        """The weight quantizer."""
        return SymmetricQuantizer(self.bits) if self.symmetric else AsymmetricQuantizer(self.bits)

    def act_quantizer(self) -> _Quantizer:
        """The activation quantizer (same grid kind, ``act_bits`` wide)."""
        return SymmetricQuantizer(self.act_bits) if self.symmetric else AsymmetricQuantizer(self.act_bits)

    def to_dict(self) -> dict:
        return asdict(self)


class ActivationObserver(nn.Module):
    """Tracks an activation's range: absolute min/max while calibrating, an EMA while QAT trains."""

    def __init__(self):
        super().__init__()
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.register_buffer("seen", torch.tensor(False))
        self.mode = "frozen"  # "calibrate" | "ema" | "frozen"

    def observe(self, x: torch.Tensor) -> None:
        lo, hi = x.detach().min(), x.detach().max()
        if not bool(self.seen):
            self.lo.copy_(lo)
            self.hi.copy_(hi)
            self.seen.fill_(True)
        elif self.mode == "calibrate":
            self.lo.copy_(torch.minimum(self.lo, lo))
            self.hi.copy_(torch.maximum(self.hi, hi))
        else:
            self.lo.lerp_(lo, EMA_MOMENTUM)
            self.hi.lerp_(hi, EMA_MOMENTUM)


class _QuantLayer(nn.Module):
    """Wraps one Conv2d or Linear: quantized input, weight and bias; the float op on dequantized values."""

    def __init__(self, layer: nn.Module, config: QuantConfig):
        super().__init__()
        self.layer = layer
        self.config = config
        self.quantizer = config.quantizer()
        self.act_quantizer = config.act_quantizer()
        self.act = ActivationObserver()

    @property
    def weight(self) -> torch.Tensor:  # so code that reads ``model.conv.weight`` keeps working
        return self.layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.layer.bias

    def _weight_axis(self) -> int | None:
        return 0 if self.config.per_channel else None

    def weight_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.quantizer.params(self.layer.weight, self._weight_axis())

    def input_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not bool(self.act.seen):
            raise HarnessError("quantized layer used before calibration (run quant.calibrate first)")
        return self.act_quantizer.params_from_range(self.act.lo, self.act.hi)

    def quantized_weight(self) -> torch.Tensor:
        """The dequantized weight the forward pass uses (what export consumes)."""
        s, z = self.weight_params()
        return self.quantizer.fake(self.layer.weight, s, z, self._weight_axis())

    def quantized_bias(self) -> torch.Tensor | None:
        """Bias rounded to int32 at scale s_in * s_w (per channel when weights are)."""
        if self.layer.bias is None:
            return None
        s_in, _ = self.input_params()
        s_w, _ = self.weight_params()
        scale = (s_in * s_w).expand_as(self.layer.bias) if s_w.dim() == 0 else s_in * s_w
        q = torch.clamp(round_ste(self.layer.bias / scale), -(2 ** 31), 2 ** 31 - 1)
        return q * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act.mode == "calibrate" or (self.act.mode == "ema" and self.training):
            self.act.observe(x)
        s_in, z_in = self.input_params()
        x = self.act_quantizer.fake(x, s_in, z_in)
        return self._op(x, self.quantized_weight(), self.quantized_bias())


class QuantConv2d(_QuantLayer):
    def _op(self, x, w, b):
        c = self.layer
        return F.conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups)


class QuantLinear(_QuantLayer):
    def _op(self, x, w, b):
        return F.linear(x, w, b)


def quantize_model(model: nn.Module, config: QuantConfig) -> nn.Module:
    """A copy of ``model`` whose every Conv2d and Linear is wrapped for fake quantization."""
    model = copy.deepcopy(model)

    def wrap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(parent, name, QuantConv2d(child, config))
            elif isinstance(child, nn.Linear):
                setattr(parent, name, QuantLinear(child, config))
            elif not isinstance(child, _QuantLayer):
                wrap(child)

    wrap(model)
    return model


def quant_layers(model: nn.Module) -> list[_QuantLayer]:
    return [m for m in model.modules() if isinstance(m, _QuantLayer)]


def set_observer_mode(model: nn.Module, mode: str) -> None:
    for layer in quant_layers(model):
        layer.act.mode = mode


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """PTQ calibration: record each layer's input range (absolute min/max) over ``batches``."""
    was_training = model.training
    model.eval()
    set_observer_mode(model, "calibrate")
    for layer in quant_layers(model):
        layer.act.seen.fill_(False)
    n = 0
    for xb in batches:
        model(xb)
        n += len(xb)
    if n == 0:
        raise HarnessError("quantization calibration got no data (empty calibration set)")
    set_observer_mode(model, "frozen")
    model.train(was_training)
    return model


def ptq(model: nn.Module, config: QuantConfig, x_calib: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """Post-training quantization: wrap, calibrate on ``x_calib`` (float inputs), no training."""
    qmodel = quantize_model(model, config)
    x_calib = x_calib[:PTQ_CALIBRATION_SAMPLES]
    calibrate(qmodel, (x_calib[i:i + batch_size] for i in range(0, len(x_calib), batch_size)))
    return qmodel.eval()


@torch.no_grad()
def plain_weights(qmodel: nn.Module, plain: nn.Module) -> nn.Module:
    """Copy the dequantized weights and biases of ``qmodel`` into the float twin ``plain``."""
    plain_params = dict(plain.named_modules())
    for name, module in qmodel.named_modules():
        if isinstance(module, _QuantLayer):
            target = plain_params[name]
            target.weight.copy_(module.quantized_weight())
            if target.bias is not None:
                target.bias.copy_(module.quantized_bias())
    return plain.eval()


def qat(model: nn.Module, config: QuantConfig, x_train, y_train, x_val, y_val,
        epochs: int = QAT_EPOCHS, lr: float = QAT_LR, seed: int = 0, fit=None, progress: bool = False,
        x_calib: torch.Tensor | None = None, **fit_kwargs) -> nn.Module:
    """Quantization-aware fine-tuning from the float model: calibrate, then train through the STE.

    ``x_train`` is whatever ``fit`` takes (``harness.model.train.fit``: int8 or float features, or
    per-epoch augmented copies); ``x_calib`` (float inputs, default ``x_train``) calibrates the
    activation ranges before training. Using the baseline's own ``fit`` means QAT differs from float
    training only in the fake-quant forward pass. The training history is kept as ``qat_history``.
    """
    if fit is None:
        from harness.model.train import fit
    if x_calib is None:
        x_calib = x_train if isinstance(x_train, torch.Tensor) else torch.as_tensor(x_train, dtype=torch.float32)
    qmodel = ptq(model, config, x_calib)
    set_observer_mode(qmodel, "ema")
    history = fit(qmodel, x_train, y_train, x_val, y_val, epochs=epochs, lr=lr, seed=seed, progress=progress, **fit_kwargs)
    set_observer_mode(qmodel, "frozen")
    qmodel.qat_history = history
    return qmodel.eval()
