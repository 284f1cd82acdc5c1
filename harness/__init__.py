"""Hardware-in-the-loop benchmark harness for tiny keyword-spotting networks.

The data's path through the package (DESIGN.md section 3):
dataset/synth -> features -> train -> variants (quant, prune) -> export (.tflite)
-> reference (TFLM golden outputs) -> codegen + firmware (PlatformIO) -> emulator/boards
-> link (serial protocol) -> results -> budgets / report / compare. plugin.py wires it into pytest.
"""

__version__ = "0.1.0"
