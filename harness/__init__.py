"""Hardware-in-the-loop benchmark harness for tiny keyword-spotting networks.

The data's path through the package (docs/ARCHITECTURE.md section 1):
data (synth, dataset, features) -> model (train, variants: quant/prune, export .tflite)
-> device (reference TFLM outputs, codegen + firmware, boards/emulator, link) -> bench (pipeline,
pytestplugin, results, budgets, report, compare); figures and commands sit on top. The floor
(errors, paths, cache, progress, capture, tflite_info) is shared by all.
"""

__version__ = "0.1.0"
