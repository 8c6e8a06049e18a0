"""The library's argument checks: one message for each kind of mistake."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def check_positive_int(name: str, value: Any, *, none: str | None = None) -> None:
  """Raises ValueError unless ``value`` is an int ≥ 1 (a bool is not), or None where
  ``none`` says what None means.

  >>> check_positive_int("timesteps", 0)
  Traceback (most recent call last):
  ValueError: timesteps must be a positive int, got 0
  >>> check_positive_int("channels", None, none="layer-wise")
  """
  if value is None and none is not None:
    return
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    also = f" or None ({none})" if none is not None else ""
    raise ValueError(f"{name} must be a positive int{also}, got {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
  """Raises ValueError unless ``value`` is one of ``choices``.

  >>> check_choice("gating", "fuzzy", ("soft", "hard"))
  Traceback (most recent call last):
  ValueError: gating must be one of ('soft', 'hard'), got 'fuzzy'
  """
  choices = tuple(choices)
  if value not in choices:
    raise ValueError(f"{name} must be one of {choices}, got {value!r}")
