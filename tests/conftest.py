"""Shared fixtures: the small synthetic data set, generated once into the cache and reused.

The set lives under ``harness.paths.cache_dir()/datasets/`` keyed by the generator's settings and
source, so the first test session pays a few seconds and later sessions pay nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_dataset() -> Path:
    """Path of the small synthetic Speech Commands set (a few hundred clips)."""
    from harness.data import synth

    return synth.default_dataset("small", progress=False)


@pytest.fixture(scope="session")
def small_splits(small_dataset: Path):
    """The small set split by TF's rules (``harness.data.dataset.Splits``)."""
    from harness.data import dataset

    return dataset.load_splits(small_dataset)


@pytest.fixture(scope="session")
def nights(tmp_path_factory: pytest.TempPathFactory, small_dataset: Path):
    """Five nights in a results folder: two real suite runs on the emulated board, three derived
    copies with an injected 1 %/night drift and a step, and one partial run (tests/nights.py)."""
    from nights import make_nights

    return make_nights(tmp_path_factory.mktemp("nights"), small_dataset)
