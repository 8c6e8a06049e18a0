"""Timing helpers shared by the benchmarks: compile first, then the median of several runs."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def median_seconds(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> float:
  """Median wall time of ``fn()`` in seconds; JAX results are waited for."""
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def interleaved_median_seconds(
  fns: dict[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1
) -> dict[str, float]:
  """Median wall time in seconds of each ``fns[k]()``, the runs interleaved.

  One run of every function per repeat, so that a change in the machine's load during
  the measurement reaches every function alike and their ratios stay comparable.
  """
  for fn in fns.values():
    for _ in range(warmup):
      jax.block_until_ready(fn())
  times = {k: [] for k in fns}
  for _ in range(repeats):
    for k, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times[k].append(time.perf_counter() - start)
  return {k: statistics.median(v) for k, v in times.items()}


def copy_bandwidth(num_bytes: int = 256 * 2**20, repeats: int = 5) -> float:
  """Measured memory bandwidth in bytes/s of a large array copy (bytes read + written)."""
  src = np.ones(num_bytes // 4, np.float32)
  dst = np.empty_like(src)
  seconds = median_seconds(lambda: np.copyto(dst, src), repeats=repeats)
  return 2 * num_bytes / seconds


def machine() -> dict[str, Any]:
  """A short description of where the benchmark ran."""
  return {
    "platform": platform.platform(),
    "processor": platform.processor() or platform.machine(),
    "devices": [str(d) for d in jax.devices()],
    "jax": jax.__version__,
    # The allocator decides how often XLA:CPU's fresh output buffers page-fault.
    "allocator": {k: os.environ[k] for k in ("GLIBC_TUNABLES", "LD_PRELOAD") if k in os.environ},
    "date": time.strftime("%Y-%m-%d"),
  }


def emit(record: dict[str, Any]) -> None:
  """Prints one JSON line."""
  print(json.dumps(record), flush=True)
