"""The golden outputs: TensorFlow Lite Micro's reference kernels run on the host.

The on-device runtime must match these int8 scores bit for bit, so the reference is TFLM itself
(the ``tflite-micro`` Python package), not ``tf.lite.Interpreter``: docs/ARCHITECTURE.md section 7 records
that the TFLM package equals ``tf.lite`` with BUILTIN_REF kernels, while tf.lite's default
(XNNPACK) path differs by 1 LSB. It also imports in ~0.1 s instead of TensorFlow's ~4 s.

Every file is parsed and checked (``tflite_info``) before the C++ interpreter sees it: a truncated
flatbuffer would otherwise crash the whole Python process instead of raising.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from harness import tflite_info
from harness.capture import capture_c_output
from harness.errors import HarnessError

# Scratch for the interpreter; TinyConv needs ~9.6 kB, so this leaves room for wider variants.
DEFAULT_ARENA_BYTES = 256 * 1024


def _runtime() -> Any:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as exc:
        raise HarnessError(f"the TFLM reference needs the tflite-micro package (pip install tflite-micro): {exc}") from None
    return runtime


class Reference:
    """One TFLM interpreter for one .tflite: ``invoke`` a single int8 input, get int8 scores.

    Checks the model first (parse, one int8 input, one int8 output) and turns every TFLM failure
    into a HarnessError naming the file.
    """

    def __init__(self, tflite_path: Path | str, arena_size: int = DEFAULT_ARENA_BYTES):
        self.path = Path(tflite_path)
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise HarnessError(f"cannot read .tflite {self.path}: {exc.strerror or exc}") from None
        self.model = tflite_info.parse_bytes(data, where=str(self.path))
        self.model.path = self.path
        if len(self.model.inputs) != 1 or len(self.model.outputs) != 1:
            raise HarnessError(f"{self.path}: expected 1 input and 1 output, found "
                               f"{len(self.model.inputs)} and {len(self.model.outputs)}")
        for what, t in (("input", self.model.input), ("output", self.model.output)):
            if t.dtype != "INT8":
                raise HarnessError(f"{self.path}: {what} tensor is {t.dtype}, the reference expects a full-int8 model")
        self.input_shape = tuple(self.model.input.shape)
        self.output_shape = tuple(self.model.output.shape)
        self.arena_size = int(arena_size)
        runtime = _runtime()
        with capture_c_output() as log:
            try:
                self._interp = runtime.Interpreter.from_bytes(data, arena_size=self.arena_size)
                error = None
            except (RuntimeError, ValueError) as exc:
                error = exc
        if error is not None:
            detail = " ".join(line.strip() for line in log.text.splitlines() if line.strip())[-300:]
            raise HarnessError(f"{self.path}: TFLM cannot load the model ({error}"
                               f"{'; ' + detail if detail else ''}) with a {self.arena_size}-byte arena")
        self._arena_used: int | None = None

    @property
    def output_scale(self) -> float:
        return self.model.output.scales[0]

    @property
    def output_zero_point(self) -> int:
        return self.model.output.zero_points[0]

    def dequantize(self, scores_int8: np.ndarray) -> np.ndarray:
        """Float scores from int8 scores with the output tensor's (scale, zero point)."""
        return (np.asarray(scores_int8, dtype=np.float32) - self.output_zero_point) * self.output_scale

    def invoke(self, x_int8: np.ndarray) -> np.ndarray:
        """Run one input (e.g. int8 [49, 40]) and return the int8 scores, flattened to [C]."""
        x = np.asarray(x_int8)
        if x.dtype != np.int8:
            raise HarnessError(f"{self.path}: reference input must be int8, got {x.dtype}")
        expected = int(np.prod(self.input_shape))
        if x.size != expected:
            raise HarnessError(f"{self.path}: reference input has shape {x.shape}; the model takes {self.input_shape}")
        self._interp.set_input(np.ascontiguousarray(x.reshape(self.input_shape)), 0)
        try:
            self._interp.invoke()
        except RuntimeError as exc:
            raise HarnessError(f"{self.path}: TFLM invoke failed: {exc}") from None
        return np.array(self._interp.get_output(0), dtype=np.int8).reshape(-1)

    def predict(self, x_int8: np.ndarray) -> np.ndarray:
        """Scores for a batch: int8 [N, 49, 40] -> int8 [N, C] (the model itself runs batch 1)."""
        x = np.asarray(x_int8)
        per_sample = int(np.prod(self.input_shape))
        if x.dtype != np.int8 or x.size % per_sample:
            raise HarnessError(f"{self.path}: reference batch must be int8 [N, {', '.join(map(str, self.input_shape[1:]))}], "
                               f"got {x.dtype} {x.shape}")
        x = x.reshape(-1, per_sample)
        out = np.empty((len(x), int(np.prod(self.output_shape))), dtype=np.int8)
        for i, sample in enumerate(x):
            out[i] = self.invoke(sample)
        return out

    @property
    def arena_used(self) -> int:
        """Bytes of the tensor arena the model actually uses (TFLM's RecordingMicroAllocator).

        TFLM prints this from C++ to stderr only; captured through an fd redirect. Needs one invoke
        first (done here if none ran yet).
        """
        if self._arena_used is None:
            self.invoke(np.full(self.input_shape, self.model.input.zero_points[0] if self.model.input.zero_points else 0,
                                dtype=np.int8))
            with capture_c_output((2,)) as log:
                self._interp.print_allocations()
            self._arena_used = parse_arena_total(log.text, where=str(self.path))
        return self._arena_used


def parse_arena_total(text: str, where: str = "TFLM") -> int:
    """Arena bytes from TFLM's ``print_allocations`` text ("Arena allocation total N bytes")."""
    match = re.search(r"Arena allocation total (\d+) bytes", text)
    if not match:
        raise HarnessError(f"{where}: TFLM printed no arena total (got {text.strip()[:120]!r})")
    return int(match.group(1))


def predict(tflite_path: Path | str, x_int8: np.ndarray) -> np.ndarray:
    """Golden int8 scores: [N, 49, 40] int8 -> [N, C] int8 from the TFLM reference kernels."""
    return Reference(tflite_path).predict(x_int8)


def accuracy(tflite_path: Path | str, x_int8: np.ndarray, y: np.ndarray) -> float:
    """Fraction of samples whose TFLM argmax equals the label."""
    y = np.asarray(y)
    if len(y) != len(x_int8):
        raise HarnessError(f"{tflite_path}: {len(x_int8)} inputs but {len(y)} labels")
    if len(y) == 0:
        raise HarnessError(f"{tflite_path}: accuracy over an empty set")
    return float(np.mean(predict(tflite_path, x_int8).argmax(axis=1) == y))


def arena_bytes(tflite_path: Path | str) -> int:
    """Tensor arena bytes TFLM uses for this model (what a TFLM firmware must reserve at least)."""
    return Reference(tflite_path).arena_used
