"""TensorFlow's speaker-hash split rule (speech_commands/input_data.py ``which_set``).

A clip's split depends only on its speaker key, so a speaker never straddles train and test and a
new clip never moves an old one. Both the data set loader and the synthetic generator (which places
its speakers so the splits reach the paper's sizes) use this rule, so it lives apart from both.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M, TF's constant
VALIDATION_PERCENTAGE = 10.0
TESTING_PERCENTAGE = 10.0


def speaker_of(filename: str) -> str:
    """TF's hash key: the base name with ``_nohash_`` and everything after it removed."""
    return re.sub(r"_nohash_.*$", "", Path(filename).name)


def which_set(filename: str, validation_percentage: float = VALIDATION_PERCENTAGE,
              testing_percentage: float = TESTING_PERCENTAGE) -> str:
    """TF's ``which_set``: 'training' | 'validation' | 'testing' from the SHA-1 of the speaker key."""
    hash_name = speaker_of(filename)
    hashed = hashlib.sha1(hash_name.encode()).hexdigest()
    percentage_hash = (int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < testing_percentage + validation_percentage:
        return "testing"
    return "training"
