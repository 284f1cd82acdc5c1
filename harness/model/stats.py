"""Model statistics by the paper's rules: parameters, FLOPs, flash and RAM estimates, host latency.

These are estimates computed from the PyTorch model (what a user gets before building any
firmware); the firmware step later measures flash and RAM from the ELF for comparison.

FLOPs (counted with forward hooks, one counter per module type, batch 1):
- Conv2d: 2 per multiply-accumulate (bias adds are not counted), i.e.
  2 * out_elements * in_channels/groups * kh * kw. TinyConv: 2 * 25*20*8 * 10*8 = 640,000.
- Linear: 2 per MAC plus 1 per bias element: 2 * in * out + out. TinyConv: 32,000 + 4 = 32,004.
- Other modules (padding, ReLU, dropout): 0.
``nonzero_flops`` applies the same rule but skips MACs whose weight is exactly zero (what a
sparse kernel could skip after unstructured pruning).

Flash estimate: parameters x bits/8 (dense storage; the paper's rule). ``flash_nonzero_bytes``
is the same for the non-zero parameters only (a lower bound for sparse storage, no indices).

RAM estimate, the paper's method: for every leaf module that runs in the forward pass, add the
element count of its input and of its output tensors, then multiply by the bytes per activation
(4 for float32; 1 for quantized models, whose activations are int8 on the device). Tensors shared
by consecutive layers are counted twice, which is why this over-estimates the arena a planner
needs; ``ram_peak_bytes`` (the largest single layer's input + output) is the tighter figure.
For TinyConv at float32 the rule gives 125,200 B (pad 1960+2668, conv 2668+4000, ReLU, dropout
4000+4000 each, fc 4000+4 elements). ``ram_fwd_bwd_bytes`` is torchinfo's "forward/backward pass
size" (2 x the sum of leaf outputs x bytes): 117,376 B for TinyConv, the paper's "117 KB", so that
is most likely the tool behind the paper's figure.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import nn

from models.tinyconv import INPUT_SHAPE

from harness.errors import HarnessError


def _conv_flops(m: nn.Conv2d, out: torch.Tensor) -> tuple[int, int]:
    per_out = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
    macs = out.numel() * per_out
    # non-zero MACs: each weight is used once per output position of its output channel
    positions = out.numel() // out.shape[1]
    nz_macs = int((m.weight != 0).sum()) * positions
    return 2 * macs, 2 * nz_macs


def _linear_flops(m: nn.Linear, out: torch.Tensor) -> tuple[int, int]:
    rows = out.numel() // m.out_features
    macs = rows * m.in_features * m.out_features
    nz_macs = rows * int((m.weight != 0).sum())
    bias = rows * m.out_features if m.bias is not None else 0
    nz_bias = rows * int((m.bias != 0).sum()) if m.bias is not None else 0
    return 2 * macs + bias, 2 * nz_macs + nz_bias


def _tensor_elems(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel()
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_elems(o) for o in obj)
    return 0


def layer_profile(model: nn.Module, input_shape: tuple[int, ...] = INPUT_SHAPE) -> list[dict[str, Any]]:
    """One row per leaf module run in a batch-1 forward pass: type, in/out elements, FLOPs."""
    rows: list[dict[str, Any]] = []
    hooks = []

    def hook(name: str):
        def fn(m: nn.Module, inputs: tuple, out: Any) -> None:
            flops = nz = 0
            if isinstance(m, nn.Conv2d):
                flops, nz = _conv_flops(m, out)
            elif isinstance(m, nn.Linear):
                flops, nz = _linear_flops(m, out)
            rows.append({
                "name": name, "type": type(m).__name__,
                "in_elements": _tensor_elems(inputs), "out_elements": _tensor_elems(out),
                "flops": flops, "nonzero_flops": nz,
            })
        return fn

    for name, m in model.named_modules():
        if not list(m.children()):  # leaf modules only
            hooks.append(m.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def model_stats(
    model: nn.Module,
    bits: int = 32,
    activation_bits: int | None = None,
    input_shape: tuple[int, ...] = INPUT_SHAPE,
) -> dict[str, Any]:
    """Parameters, non-zero parameters, FLOPs (total and per type), flash and RAM estimates.

    ``bits`` is the bits per stored weight (32 float, 8/6/4/2 quantized); ``activation_bits``
    defaults to 32 for float models and 8 otherwise (int8 activations on the device).
    """
    if bits < 1 or bits > 32:
        raise HarnessError(f"stats: bits per parameter must be 1..32, got {bits}")
    if activation_bits is None:
        activation_bits = 32 if bits == 32 else 8
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    n_nonzero = sum(int((p != 0).sum()) for p in params)
    rows = layer_profile(model, input_shape)
    flops_by_type: dict[str, int] = {}
    for r in rows:
        if r["flops"]:
            key = r["type"].lower()
            flops_by_type[key] = flops_by_type.get(key, 0) + r["flops"]
    act_bytes = activation_bits / 8
    ram_elems = sum(r["in_elements"] + r["out_elements"] for r in rows)
    out_elems = sum(r["out_elements"] for r in rows)
    peak_elems = max((r["in_elements"] + r["out_elements"] for r in rows), default=0)
    flash = n_params * bits / 8
    return {
        "bits": bits,
        "activation_bits": activation_bits,
        "parameters": n_params,
        "nonzero_parameters": n_nonzero,
        "sparsity": 1 - n_nonzero / n_params if n_params else 0.0,
        "flops": sum(r["flops"] for r in rows),
        "nonzero_flops": sum(r["nonzero_flops"] for r in rows),
        "flops_by_type": flops_by_type,
        "flash_bytes": int(round(flash)),
        "flash_mb": flash / 1e6,
        "flash_nonzero_bytes": int(round(n_nonzero * bits / 8)),
        "ram_bytes": int(round(ram_elems * act_bytes)),
        "ram_kb": ram_elems * act_bytes / 1e3,
        "ram_peak_bytes": int(round(peak_elems * act_bytes)),
        "ram_fwd_bwd_bytes": int(round(2 * out_elems * act_bytes)),
        "layers": rows,
    }


def host_latency(
    model: nn.Module,
    device: str = "cpu",
    repeats: int = 200,
    warmup: int = 20,
    threads: int | None = None,
    input_shape: tuple[int, ...] = INPUT_SHAPE,
) -> dict[str, Any]:
    """Batch-1 forward latency on the host (``device`` "cpu" or "cuda"), in milliseconds.

    Times each call separately (CUDA synchronized before reading the clock) so the median is the
    per-inference latency, comparable with the paper's 2.010 ms CPU / 34 us T4 GPU figures.
    ``threads`` sets torch's intra-op threads for the measurement only.
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarnessError(f"host latency: device {device!r} requested but CUDA is not available")
    if repeats < 1:
        raise HarnessError(f"host latency: repeats must be >= 1, got {repeats}")
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    was_training = model.training
    model.eval()
    orig_device = next(model.parameters()).device
    try:
        model.to(device)
        x = torch.randn((1, *input_shape), device=device)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        times = []
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            sync()
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x)
                sync()
                times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.to(orig_device)
        model.train(was_training)
        torch.set_num_threads(old_threads)
    times.sort()
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "threads": torch.get_num_threads() if not threads else threads,
        "repeats": repeats,
        "median_ms": statistics.median(times),
        "mean_ms": statistics.fmean(times),
        "min_ms": times[0],
        "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
        "max_ms": times[-1],
    }


def host_latencies(model: nn.Module, repeats: int = 200, threads: int | None = None) -> dict[str, dict[str, Any]]:
    """CPU latency, plus GPU latency when CUDA is present."""
    out = {"cpu": host_latency(model, "cpu", repeats=repeats, threads=threads)}
    if torch.cuda.is_available():
        out["cuda"] = host_latency(model, "cuda", repeats=repeats)
    return out
