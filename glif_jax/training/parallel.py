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
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PARALLEL_MODES = ("jit", "pmap")
DATA_AXIS = "data"  # the mesh axis of "jit"
PMAP_AXIS = "batch"  # the pmap axis of "pmap"

Batch = dict[str, np.ndarray]


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


class Layout:
  """How batches and state are placed and the steps compiled (see the module docstring).

  Args:
    mode: ``"jit"`` or ``"pmap"``.
  """

  def __init__(self, mode: str):
    if mode not in PARALLEL_MODES:
      raise ValueError(f"config.parallel must be one of {PARALLEL_MODES}, got {mode!r}")
    self.mode = mode
    self.mesh = Mesh(np.asarray(jax.devices()), (DATA_AXIS,))
    self.replicated = NamedSharding(self.mesh, PartitionSpec())
    self._split = NamedSharding(self.mesh, PartitionSpec(DATA_AXIS))

  @property
  def axis_name(self) -> str | None:
    """The axis the steps (and tdBN) average over by name: None under ``"jit"``."""
    return PMAP_AXIS if self.mode == "pmap" else None

  def rows(self, batch_size: int) -> slice:
    """This process's rows of a global batch of ``batch_size``: its devices' block."""
    indices = self._split.addressable_devices_indices_map((batch_size,)).values()
    blocks = [range(batch_size)[index] for (index,) in indices]
    start, stop = min(b.start for b in blocks), max(b.stop for b in blocks)
    if stop - start != batch_size * jax.local_device_count() // jax.device_count():
      raise ValueError(f"the devices of process {jax.process_index()} hold no contiguous block")
    return slice(start, stop)

  def batch(self, local: Batch, batch_size: int) -> Any:
    """The global batch from this process's rows ``local`` (``[B / processes, ...]``)."""
    if self.mode == "pmap":
      n = jax.local_device_count()
      return {k: v.reshape(n, -1, *v.shape[1:]) for k, v in local.items()}
    return {
      k: jax.make_array_from_process_local_data(self._split, v, (batch_size, *v.shape[1:]))
      for k, v in local.items()
    }

  def state(self, tree: Any) -> Any:
    """A host (or global replicated) ``tree`` placed for the steps."""
    if self.mode == "pmap":
      n = jax.local_device_count()
      return jax.tree.map(lambda x: np.broadcast_to(x, (n, *np.shape(x))), host(tree))
    return self._replicate(host(tree))

  def host(self, tree: Any) -> Any:
    """NumPy copies of the replicated step outputs or state ``tree`` (the first copy)."""
    if self.mode == "jit":
      return host(tree)
    return jax.tree.map(lambda x: host(x)[0], tree)  # this process's first device's copy

  def abstract(self, tree: Any) -> Any:
    """Shapes and dtypes of ``tree``, replicated: the target a checkpoint restores to."""
    return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated), tree
    )

  def checkpointable(self, state: Any) -> Any:
    """``state`` as global replicated arrays, which orbax saves once for all processes."""
    return state if self.mode == "jit" else self._replicate(self.host(state))

  def _replicate(self, tree: Any) -> Any:
    make = functools.partial(jax.make_array_from_process_local_data, self.replicated)
    return jax.tree.map(make, tree)

  def compile(
    self, step: Callable[..., Any], *, donate: tuple[int, ...] = ()
  ) -> Callable[..., Any]:
    """``step(state, batch, *, axis_name)`` compiled for this layout."""
    if self.mode == "pmap":
      step = functools.partial(step, axis_name=PMAP_AXIS)
      return jax.pmap(step, axis_name=PMAP_AXIS, donate_argnums=donate)
    return jax.jit(
      functools.partial(step, axis_name=None),
      in_shardings=(self.replicated, self._split),
      out_shardings=self.replicated,
      donate_argnums=donate,
    )
