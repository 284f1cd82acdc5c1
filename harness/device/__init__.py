"""Stage 3: a .tflite -> generated C -> PlatformIO firmware -> a board (QEMU, host, real Nano) -> numbers.

The ahead-of-time code generator, the firmware build and its ELF sizes, the TFLM reference outputs, the
serial protocol and link, the emulator and the board kinds. Its input is a .tflite file: it imports
harness.data where it must (feature constants) and the floor, never harness.model or harness.bench.
"""

__all__ = ["boards", "codegen", "cycles", "emuboard", "emulator", "firmware", "frontend_native", "link", "protocol", "reference"]
