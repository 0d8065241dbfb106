"""The examples in the verification docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "rollwave.ports.metrics",
    "rollwave.adapters.metrics",
    "rollwave.verification.exposition",
    "rollwave.verification.measures",
    "rollwave.verification.judge",
    "rollwave.verification.words",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
