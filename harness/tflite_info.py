"""Read a .tflite flatbuffer into plain Python: ops, tensors with shapes and quantization, weights.

The export checks its own output with it, the TFLM reference validates a file with it before the
C++ interpreter sees the bytes (a truncated or corrupt flatbuffer would otherwise crash the
process), and the on-device code generator reads operators, options and weight buffers from it.

It parses with the schema module shipped inside the ``tflite-micro`` package (pure Python,
``flatbuffers`` only), so nothing here imports TensorFlow.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

FILE_IDENTIFIER = b"TFL3"

# TensorType enum -> numpy dtype (the types an int8 TinyConv export can contain, plus common ones).
_NUMPY_TYPES = {
    0: np.float32,
    1: np.float16,
    2: np.int32,
    3: np.uint8,
    4: np.int64,
    6: np.bool_,
    7: np.int16,
    9: np.int8,
    10: np.float64,
    12: np.uint64,
    15: np.uint32,
    16: np.uint16,
}


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def _enum_names(enum_class: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class TensorInfo:
    """One tensor: shape, element type, quantization and (for constants) its data."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # TFLite type name, e.g. "INT8"
    scales: list[float] = field(default_factory=list)
    zero_points: list[int] = field(default_factory=list)
    quantized_dimension: int = 0
    data: np.ndarray | None = None  # constant data (weights, biases, shapes), shaped; None for activations

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def nbytes(self) -> int:
        return 0 if self.data is None else int(self.data.nbytes)

    def summary(self) -> dict[str, Any]:
        """JSON-able description (no data)."""
        return {
            "index": self.index,
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scales": self.scales if len(self.scales) <= 4 else f"{len(self.scales)} per-channel",
            "zero_points": self.zero_points if len(self.zero_points) <= 4 else f"{len(self.zero_points)} per-channel",
            "quantized_dimension": self.quantized_dimension,
            "constant": self.is_constant,
        }


@dataclass
class OpInfo:
    """One operator: its builtin name, tensor indices (-1 = optional input absent) and options."""

    index: int
    name: str  # e.g. "CONV_2D"
    version: int
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any]  # builtin options as plain values, e.g. {"strideW": 2, "padding": 0, ...}


@dataclass
class TfliteModel:
    """A parsed single-subgraph .tflite."""

    path: Path | None
    size: int
    ops: list[OpInfo]
    tensors: list[TensorInfo]
    inputs: list[int]
    outputs: list[int]

    @property
    def op_names(self) -> list[str]:
        return [op.name for op in self.ops]

    @property
    def input(self) -> TensorInfo:
        return self.tensors[self.inputs[0]]

    @property
    def output(self) -> TensorInfo:
        return self.tensors[self.outputs[0]]

    def weights(self) -> dict[int, np.ndarray]:
        """Constant tensors by tensor index (weights, biases, shape operands)."""
        return {t.index: t.data for t in self.tensors if t.data is not None}

    def op_tensors(self, op: OpInfo) -> list[TensorInfo | None]:
        """The input tensors of ``op`` (None where an optional input is absent)."""
        return [self.tensors[i] if i >= 0 else None for i in op.inputs]

    def summary(self) -> dict[str, Any]:
        """JSON-able description: size, ops, tensors, input/output quantization."""
        def quant(t: TensorInfo) -> dict[str, Any]:
            return {"shape": list(t.shape), "dtype": t.dtype, "scale": t.scales[0] if t.scales else None,
                    "zero_point": t.zero_points[0] if t.zero_points else None}

        return {
            "path": str(self.path) if self.path else None,
            "size_bytes": self.size,
            "ops": self.op_names,
            "input": quant(self.input),
            "output": quant(self.output),
            "weight_bytes": sum(t.nbytes for t in self.tensors),
            "tensors": [t.summary() for t in self.tensors],
        }


def _options_dict(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in vars(options).items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, (int, float, bool, str, list)) or value is None:
            out[key] = value
    return out


def parse_bytes(data: bytes, where: str = "<bytes>") -> TfliteModel:
    """Parse and sanity-check a .tflite image; HarnessError naming ``where`` if it is not a usable one."""
    if len(data) < 16:
        raise HarnessError(f"{where}: not a .tflite model ({len(data)} bytes, too short)")
    if data[4:8] != FILE_IDENTIFIER:
        raise HarnessError(f"{where}: not a .tflite model (file identifier {data[4:8]!r}, expected b'TFL3')")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{where}: corrupt or truncated .tflite ({len(data)} bytes): {type(exc).__name__}") from None
    return _from_object(model, len(data), where)


def _from_object(model: Any, size: int, where: str) -> TfliteModel:
    op_names = _enum_names(_schema().BuiltinOperator)
    type_names = _enum_names(_schema().TensorType)
    bad = lambda what: HarnessError(f"{where}: corrupt .tflite ({what})")  # noqa: E731
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise bad(f"{len(model.subgraphs or [])} subgraphs, expected 1")
    graph = model.subgraphs[0]
    buffers = model.buffers or []
    codes = model.operatorCodes or []
    raw_tensors = graph.tensors or []

    tensors: list[TensorInfo] = []
    for i, t in enumerate(raw_tensors):
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if any(d < 0 for d in shape):
            raise bad(f"tensor {i} has a negative dimension {shape}")
        if t.buffer < 0 or t.buffer >= max(len(buffers), 1):
            raise bad(f"tensor {i} refers to buffer {t.buffer} of {len(buffers)}")
        data = None
        buf = buffers[t.buffer] if buffers else None
        raw = None
        if buf is not None and buf.data is not None and len(buf.data) > 0:
            raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
        elif buf is not None and buf.offset > 1:
            raise bad(f"tensor {i} uses an external buffer (offset {buf.offset}), not supported")
        if raw is not None:
            if t.type not in _NUMPY_TYPES:
                raise bad(f"constant tensor {i} has unsupported type {type_names.get(t.type, t.type)}")
            dtype = np.dtype(_NUMPY_TYPES[t.type])
            count = int(np.prod(shape)) if shape else 1
            if len(raw) != count * dtype.itemsize:
                raise bad(f"tensor {i} holds {len(raw)} bytes, shape {shape} needs {count * dtype.itemsize}")
            data = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        q = t.quantization
        scales = [float(s) for s in q.scale] if q is not None and q.scale is not None else []
        zps = [int(z) for z in q.zeroPoint] if q is not None and q.zeroPoint is not None else []
        name = t.name.decode() if isinstance(t.name, bytes) else (t.name or "")
        tensors.append(TensorInfo(i, name, shape, type_names.get(t.type, str(t.type)), scales, zps,
                                  int(q.quantizedDimension) if q is not None else 0, data))

    def check_indices(what: str, indices: Any, optional: bool = False) -> list[int]:
        out = [int(j) for j in (indices if indices is not None else [])]
        for j in out:
            if not (0 <= j < len(tensors) or (optional and j == -1)):
                raise bad(f"{what} refers to tensor {j} of {len(tensors)}")
        return out

    ops: list[OpInfo] = []
    for k, op in enumerate(graph.operators or []):
        if op.opcodeIndex < 0 or op.opcodeIndex >= len(codes):
            raise bad(f"operator {k} uses opcode {op.opcodeIndex} of {len(codes)}")
        code = codes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            name = f"CUSTOM:{custom}"
        ops.append(OpInfo(k, name, int(code.version), check_indices(f"operator {k} ({name})", op.inputs, True),
                          check_indices(f"operator {k} ({name})", op.outputs), _options_dict(op.builtinOptions)))
    inputs = check_indices("graph inputs", graph.inputs)
    outputs = check_indices("graph outputs", graph.outputs)
    if not inputs or not outputs:
        raise bad("graph without inputs or outputs")
    return TfliteModel(None, size, ops, tensors, inputs, outputs)


def read(path: Path | str) -> TfliteModel:
    """Parse a .tflite file; HarnessError naming the file if it is missing, truncated or corrupt."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HarnessError(f"cannot read .tflite {path}: {exc.strerror or exc}") from None
    model = parse_bytes(data, where=str(path))
    model.path = path
    return model
