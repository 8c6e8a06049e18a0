"""The data tests' fixture: ``data_dir``, where a test's builders prepare their data sets.

The writers of small files in the real formats are in `tests.support.files`.
"""

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
  return tmp_path / "prepared"
