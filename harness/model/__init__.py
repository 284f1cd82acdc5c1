"""Stage 2: features -> a trained TinyConv -> compression variants -> an int8 .tflite.

Training, quantization, pruning, the variant registry, evaluation, parameter/FLOP statistics and the
export to the interchange format. Imports harness.data, models/ and the floor; never harness.device
(the device side takes a .tflite, not a model) and never harness.bench.
"""

__all__ = ["crossval", "evaluate", "export", "prune", "quant", "stats", "train", "variants"]
