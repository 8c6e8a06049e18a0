"""Data parallelism: where the state and the batches live, and how the steps are compiled.

Two layouts, chosen by ``config.parallel``; both average over every device of every process:

- ``"jit"`` (default): one `jax.sharding.Mesh` over all global devices with axis ``"data"``.
  The global batch ``[B, ...]`` is one `jax.Array` split over that axis, assembled with
  `jax.make_array_from_process_local_data` from the rows this process read; the state is
  replicated. The steps are plain functions of the global batch (``axis_name=None``), so
  the gradient mean and tdBN's batch statistics over the global batch come from the
  compiler.
- ``"pmap"``: `jax.pmap` over the local devices with axis ``"batch"``; the state is
  replicated as ``[D, ...]``, batches are ``[D, B/D, ...]`` and ``lax.pmean``/``psum`` over the
  axis span every device of every process.

Every process reads only its rows of each global batch (`Layout.rows`): the contiguous
block of its devices. The global batch, and so the loss, does not depend on how many
processes or devices share it.

Several processes start with `initialize` (bounded: a process that waits longer than its
timeout for the others ends with one line naming what is missing) and check with
`glif_jax.training.config.agree_across_processes` (over `differing_values`) that they run
one config of one glif-jax version before building anything.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import json
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from glif_jax import data
from glif_jax.training.errors import ConfigError

PARALLEL_MODES = ("jit", "pmap")
DATA_AXIS = "data"  # the mesh axis of "jit"
PMAP_AXIS = "batch"  # the pmap axis of "pmap"

# JAX's own start-up wait outlasts `initialize`'s by this much, so the one-line report
# comes before JAX's abort.
_JAX_EXTRA_WAIT_S = 30
# Exit status of a process whose peers did not all start, or one of which died.
DISTRIBUTED_FAILURE_STATUS = 3
# What a collective's error says when a peer process died (CPU: Gloo; GPU: NCCL).
# What JAX, its collectives and orbax's barriers say when another process is gone.
_PEER_LOST = re.compile(
  r"Gloo|NCCL|heartbeat|Connection reset|Connection closed|UNAVAILABLE|"
  r"waiting for async_write_complete barrier"
)


def host(tree: Any) -> Any:
  """NumPy copies of the leaves of a replicated global ``tree`` (this process's first copy)."""

  def fetch(x: Any) -> np.ndarray:
    return np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else np.asarray(x)

  return jax.tree.map(fetch, tree)


def any_process(flag: bool) -> bool:
  """Whether ``flag`` is True in any process (a collective: every process must call it)."""
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def sync(name: str) -> None:
  """Waits until every process reaches the barrier ``name`` (nothing with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def _gather_bytes(payload: bytes) -> list[bytes]:
  """Every process's ``payload``, in process order (a collective)."""
  sizes = multihost_utils.process_allgather(np.int32(len(payload)))
  padded = np.zeros(int(np.max(sizes)), np.uint8)
  padded[: len(payload)] = np.frombuffer(payload, np.uint8)
  rows = multihost_utils.process_allgather(padded)
  return [bytes(row[:size]) for row, size in zip(rows, sizes, strict=True)]


def differing_values(values: Mapping[str, Any]) -> dict[str, list[Any]]:
  """``{key: [its value in process 0, 1, ...]}`` for the keys whose JSON values differ
  between processes (a collective: every process must call it).

  One all-gather of a fixed-size digest when the processes agree; the values themselves
  are exchanged only when they do not.
  """
  if jax.process_count() == 1:
    return {}
  text = json.dumps(values, sort_keys=True).encode()
  digest = np.frombuffer(hashlib.sha256(text).digest(), np.uint8)
  if (multihost_utils.process_allgather(digest) == digest).all():
    return {}
  every = [json.loads(t) for t in _gather_bytes(text)]
  keys = sorted(set().union(*every))
  per_key = {k: [v.get(k) for v in every] for k in keys}
  return {k: vs for k, vs in per_key.items() if any(v != vs[0] for v in vs)}


def peer_failure(err: BaseException) -> str | None:
  """What ``err`` says of a peer process that died, if it is a failed collective of a run
  of several processes; None otherwise."""
  text = str(err).strip()
  if not (jax.distributed.is_initialized() and _PEER_LOST.search(text)):
    return None
  first = " ".join(text.splitlines()[0].split())[:200]
  return (
    f"lost contact with another process, which probably died: see its output ({first}); "
    "rerun every process with the same --workdir to resume from the latest checkpoint"
  )


def _reachable(address: str) -> bool:
  host, _, port = address.rpartition(":")
  try:
    with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
      return True
  except (OSError, ValueError):
    return False


def _missing(address: str, process: int, count: int, timeout_s: int) -> str:
  """What a process still waiting to start after ``timeout_s`` seconds lacks."""
  where = f"process {process} of {count}"
  if process != 0 and not _reachable(address):
    return (
      f"{where}: no coordinator (process 0) answered at {address} within {timeout_s} s; "
      "start process 0 there, or fix JAX_COORDINATOR_ADDRESS"
    )
  return (
    f"{where}: not all {count} processes joined the coordinator at {address} within "
    f"{timeout_s} s; start every process (JAX_PROCESS_ID 0 to {count - 1}, "
    f"JAX_NUM_PROCESSES={count}), or raise config.distributed_timeout"
  )


def _exit_unless_done(done: threading.Event, seconds: int, why: Callable[[], str]) -> None:
  """After ``seconds`` without ``done``: ``error: <why()>`` and exit status 3."""
  if not done.wait(seconds):
    sys.stderr.write(f"error: {why()}\n")
    sys.stderr.flush()
    os._exit(DISTRIBUTED_FAILURE_STATUS)


def initialize(timeout_s: int) -> None:
  """`jax.distributed.initialize`, from ``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID`` if set.

  Otherwise JAX detects the cluster (SLURM, TPU pods, ...). Prints one line while it
  waits. A process still waiting for the others after ``timeout_s`` seconds prints one
  line naming what is missing and exits with status 3 (JAX's own time-out, set later,
  would abort with a C++ stack trace). A process silent for ``timeout_s`` seconds (no
  heartbeat) is taken for dead.

  Raises:
    ConfigError: no cluster was detected and the environment does not name one.
  """
  env = os.environ
  address, count, process = None, None, None  # None: detected by JAX
  if "JAX_NUM_PROCESSES" in env and "JAX_PROCESS_ID" in env:
    address = env.get("JAX_COORDINATOR_ADDRESS", "")
    count, process = int(env["JAX_NUM_PROCESSES"]), int(env["JAX_PROCESS_ID"])
    why = functools.partial(_missing, address, process, count, timeout_s)
    waiting = f"process {process} of {count}: waiting for the coordinator at {address}"
  else:
    why = lambda: f"the cluster's processes did not all start within {timeout_s} s"
    waiting = "waiting for the cluster's processes (coordinator detected by JAX)"
  sys.stderr.write(f"{waiting} (at most {timeout_s} s: config.distributed_timeout)\n")
  done = threading.Event()
  threading.Thread(target=_exit_unless_done, args=(done, timeout_s, why), daemon=True).start()
  try:
    jax.distributed.initialize(
      coordinator_address=address,
      num_processes=count,
      process_id=process,
      initialization_timeout=timeout_s + _JAX_EXTRA_WAIT_S,
      heartbeat_timeout_seconds=timeout_s,
      shutdown_timeout_seconds=timeout_s,
    )
  except ValueError as err:  # nothing detected: "coordinator_address should be defined"
    raise ConfigError(
      f"--config.distributed=True but no cluster was detected ({err}); set "
      "JAX_COORDINATOR_ADDRESS=<host:port>, JAX_NUM_PROCESSES and JAX_PROCESS_ID"
    ) from None
  finally:
    done.set()


class Layout:
  """How batches and state are placed and the steps compiled (see the module docstring).

  ``Layout(mode)`` is the layout of ``mode`` (as ``pathlib.Path()`` is a ``PosixPath``): a
  `JitLayout` for ``"jit"``, a `PmapLayout` for ``"pmap"``. Both hold the mesh over every
  global device, whose block of rows each process reads (`rows`); the methods marked
  abstract are each layout's own.

  Args:
    mode: ``"jit"`` or ``"pmap"``.
  """

  mode: ClassVar[str]
  axis_name: ClassVar[str | None]
  """The axis the steps (and tdBN) average over by name: None under ``"jit"``."""

  def __new__(cls, mode: str | None = None) -> Layout:  # noqa: PYI034 (a subclass's)
    return object.__new__(_layout_class(mode) if cls is Layout else cls)

  def __init__(self, mode: str | None = None):
    del mode  # chosen by __new__
    self.mesh = Mesh(np.asarray(jax.devices()), (DATA_AXIS,))
    self.replicated = NamedSharding(self.mesh, PartitionSpec())
    self._split = NamedSharding(self.mesh, PartitionSpec(DATA_AXIS))

  def rows(self, batch_size: int) -> slice:
    """This process's rows of a global batch of ``batch_size``: its devices' block."""
    indices = self._split.addressable_devices_indices_map((batch_size,)).values()
    blocks = [range(batch_size)[index[0]] for index in indices if index is not None]
    start, stop = min(b.start for b in blocks), max(b.stop for b in blocks)
    if stop - start != batch_size * jax.local_device_count() // jax.device_count():
      raise ValueError(f"the devices of process {jax.process_index()} hold no contiguous block")
    return slice(start, stop)

  def abstract(self, tree: Any) -> Any:
    """Shapes and dtypes of ``tree``, replicated: the target a checkpoint restores to."""
    return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated), tree
    )

  def _replicate(self, tree: Any) -> Any:
    """A host ``tree`` as global arrays replicated on every device."""
    make = functools.partial(jax.make_array_from_process_local_data, self.replicated)
    return jax.tree.map(make, tree)

  @abc.abstractmethod
  def batch(self, local: data.Batch, batch_size: int) -> Any:
    """The global batch from this process's rows ``local`` (``[B / processes, ...]``)."""

  @abc.abstractmethod
  def state(self, tree: Any) -> Any:
    """A host (or global replicated) ``tree`` placed for the steps."""

  @abc.abstractmethod
  def host(self, tree: Any) -> Any:
    """NumPy copies of the replicated step outputs or state ``tree`` (the first copy)."""

  @abc.abstractmethod
  def checkpointable(self, state: Any) -> Any:
    """``state`` as global replicated arrays, which orbax saves once for all processes."""

  @abc.abstractmethod
  def compile(
    self, step: Callable[..., Any], *, donate: tuple[int, ...] = ()
  ) -> Callable[..., Any]:
    """``step(state, batch, *, axis_name)`` compiled for this layout."""


class JitLayout(Layout):
  """``"jit"``: the batch split over the mesh's ``"data"`` axis, the state replicated, the
  steps plain functions of the global batch (``axis_name=None``) compiled by `jax.jit`."""

  mode = "jit"
  axis_name = None

  def batch(self, local: data.Batch, batch_size: int) -> Any:
    return {
      k: jax.make_array_from_process_local_data(self._split, v, (batch_size, *v.shape[1:]))
      for k, v in local.items()
    }

  def state(self, tree: Any) -> Any:
    return self._replicate(host(tree))

  def host(self, tree: Any) -> Any:
    return host(tree)

  def checkpointable(self, state: Any) -> Any:
    return state  # already global replicated arrays

  def compile(
    self, step: Callable[..., Any], *, donate: tuple[int, ...] = ()
  ) -> Callable[..., Any]:
    return jax.jit(
      functools.partial(step, axis_name=None),
      in_shardings=(self.replicated, self._split),
      out_shardings=self.replicated,
      donate_argnums=donate,
    )


class PmapLayout(Layout):
  """``"pmap"``: `jax.pmap` over the local devices with axis ``"batch"``; the state
  replicated as ``[D, ...]``, batches ``[D, B/D, ...]``."""

  mode = "pmap"
  axis_name = PMAP_AXIS

  def batch(self, local: data.Batch, batch_size: int) -> Any:
    del batch_size  # each process's rows, split over its devices
    n = jax.local_device_count()
    return {k: v.reshape(n, -1, *v.shape[1:]) for k, v in local.items()}

  def state(self, tree: Any) -> Any:
    n = jax.local_device_count()
    return jax.tree.map(lambda x: np.broadcast_to(x, (n, *np.shape(x))), host(tree))

  def host(self, tree: Any) -> Any:
    return jax.tree.map(lambda x: host(x)[0], tree)  # this process's first device's copy

  def checkpointable(self, state: Any) -> Any:
    return self._replicate(self.host(state))

  def compile(
    self, step: Callable[..., Any], *, donate: tuple[int, ...] = ()
  ) -> Callable[..., Any]:
    step = functools.partial(step, axis_name=PMAP_AXIS)
    return jax.pmap(step, axis_name=PMAP_AXIS, donate_argnums=donate)


def _layout_class(mode: str | None) -> type[Layout]:
  """The `Layout` of ``mode``, one of `PARALLEL_MODES`."""
  layouts = {layout.mode: layout for layout in (JitLayout, PmapLayout)}
  if mode not in layouts:
    raise ValueError(f"config.parallel must be one of {PARALLEL_MODES}, got {mode!r}")
  return layouts[mode]
