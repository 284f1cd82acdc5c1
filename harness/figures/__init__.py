"""The paper's figures (preprocessing, training curve, compression sweeps), drawn with matplotlib.

Sits on top of the stages: may import harness.bench, model, data and the floor; only harness.commands
imports it.
"""

__all__ = ["compression", "history", "preprocessing", "run", "training"]
