"""Errors raised by the data package."""

from __future__ import annotations

import os


class DatasetNotFoundError(FileNotFoundError):
  """A file or directory a data set is built from is missing.

  The message names the file, where it was looked for and how to get it.
  """

  def __init__(self, what: str, where: str | os.PathLike[str], how: str) -> None:
    self.what = what
    self.where = os.fspath(where)
    self.how = how
    super().__init__(f"{what} not found in {self.where!r}. To get it: {how}")


class CorruptDatasetError(ValueError):
  """A data file exists but is truncated, malformed or not what it claims to be."""

  def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
    self.path = os.fspath(path)
    self.problem = problem
    super().__init__(f"{self.path}: {problem}")
