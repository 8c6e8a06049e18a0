"""Subprocesses with their own CPU devices: ``python -m train.main`` as one or several processes.

A test never assumes the backend or the devices of its own process: what needs several
devices runs here with ``JAX_PLATFORMS=cpu`` and its own
``--xla_force_host_platform_device_count`` (any other XLA flags are kept).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

REPO = Path(__file__).parents[2]
_DEVICE_COUNT_FLAG = re.compile(r"--xla_force_host_platform_device_count=\S+")


def cpu_env(devices: int, **extra: str) -> dict[str, str]:
  """This environment with ``devices`` CPU devices, every compiled program cached."""
  flags = _DEVICE_COUNT_FLAG.sub("", os.environ.get("XLA_FLAGS", "")).split()
  return {
    **os.environ,
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"]),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    **extra,
  }


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start(
  args: list[str],
  log: Path,
  *,
  devices: int = 1,
  processes: int = 1,
  module: str = "train.main",
  only: Sequence[int] | None = None,
  extra_args: Mapping[int, list[str]] | None = None,
) -> list[subprocess.Popen]:
  """Starts ``python -m module args`` as ``processes`` processes of ``devices`` CPU devices.

  With several processes, each gets ``JAX_COORDINATOR_ADDRESS`` (a free port on
  127.0.0.1), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, as in the README's command;
  process ``i`` writes to ``<log>.<i>``. ``only``: the process ids to start (default all);
  ``extra_args``: more arguments for some process ids.
  """
  port = free_port()
  started = []
  for i in range(processes) if only is None else only:
    extra = {}
    if processes > 1:
      extra = {
        "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
        "JAX_NUM_PROCESSES": str(processes),
        "JAX_PROCESS_ID": str(i),
      }
    more = (extra_args or {}).get(i, [])
    with open(f"{log}.{i}", "w") as out:
      started.append(
        subprocess.Popen(
          [sys.executable, "-m", module, *args, *more],
          cwd=REPO,
          env=cpu_env(devices, **extra),
          stdout=out,
          stderr=subprocess.STDOUT,
        )
      )
  return started


def wait(processes: list[subprocess.Popen], log: Path, timeout: float) -> list[int]:
  """The exit statuses of ``processes`` (killed after ``timeout`` seconds)."""
  try:
    return [p.wait(timeout) for p in processes]
  except subprocess.TimeoutExpired:
    for p in processes:
      p.kill()
    raise AssertionError(output(log, len(processes))) from None


def output(log: Path, processes: int = 1) -> str:
  return "\n".join(Path(f"{log}.{i}").read_text() for i in range(processes))


def run(args: list[str], log: Path, *, timeout: float, **options) -> str:
  """Runs to the end (every process must exit 0); returns the output of process 0."""
  processes = start(args, log, **options)
  statuses = wait(processes, log, timeout)
  assert statuses == [0] * len(processes), output(log, len(processes))
  return Path(f"{log}.0").read_text()


def restore_state(step_dir: Path) -> list[np.ndarray]:
  """The arrays of the train state of a checkpoint, saved on any devices, as NumPy leaves."""
  checkpointer = ocp.StandardCheckpointer()
  saved = checkpointer.metadata(step_dir / "state").item_metadata.tree
  here = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here), saved)
  return [np.asarray(x) for x in jax.tree.leaves(checkpointer.restore(step_dir / "state", target))]
