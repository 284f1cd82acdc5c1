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
