"""The data tests' writers of small files in the real formats, as the fixture ``fmt``."""

import importlib.util
from pathlib import Path

import pytest

_WRITERS = Path(__file__).parents[1] / "data" / "conftest.py"


@pytest.fixture(scope="session")
def fmt():
  """``tests/data/conftest.py`` as a module (its writers: ``write_cifar``, ``aedat31``, ...)."""
  spec = importlib.util.spec_from_file_location("data_file_writers", _WRITERS)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
