"""Stage 1 of a variant's path: audio clips -> splits -> 49x40 int8 features.

Holds the wav I/O, the data set layout and TF's hash split, the synthetic text-to-speech data set and the
micro_speech feature front end. Imports only the floor (harness.errors, paths, cache, progress); knows
nothing of models, devices or benchmarks.
"""

__all__ = ["audio", "clips", "dataset", "features", "hashsplit", "synth"]
