"""Shared pieces of the neuron functions: input checks and small array helpers."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def logit(p: float) -> float:
  """Inverse sigmoid of a probability ``p`` in (0, 1)."""
  return float(np.log(p) - np.log1p(-p))


def check_input(x: Any, name: str = "x") -> jax.Array:
  """Returns ``x`` as a floating array of shape ``[T, *batch, C]`` or raises."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
  if x.ndim < 2:
    raise ValueError(
      f"{name} must have shape [T, *batch, C] (rank >= 2, time-major), got shape {x.shape}"
    )
  return x


def check_step_input(x_t: Any, name: str = "x_t") -> jax.Array:
  """Returns ``x_t`` as a floating array of shape ``[*batch, C]`` (one time step) or raises."""
  x_t = jnp.asarray(x_t)
  if not jnp.issubdtype(x_t.dtype, jnp.floating):
    raise TypeError(f"{name} must be a floating-point array, got dtype {x_t.dtype}")
  if x_t.ndim < 1:
    raise ValueError(f"{name} must have shape [*batch, C] (rank >= 1), got shape {x_t.shape}")
  return x_t


def check_channel_param(name: str, value: jax.Array, channels: int) -> None:
  """Checks that a per-channel parameter has shape () (layer-wise) or (channels,)."""
  shape = jnp.shape(value)
  if shape not in ((), (channels,)):
    raise ValueError(
      f"parameter {name} must have shape () or ({channels},) to match the input's "
      f"{channels} channels, got shape {shape}"
    )


def check_state(state: Any, expected_shape: tuple[int, ...]) -> None:
  """Checks that every leaf of ``state`` has shape ``expected_shape``."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    if jnp.shape(leaf) != expected_shape:
      raise ValueError(
        f"state{jax.tree_util.keystr(path)} must have the shape of one time step of the "
        f"input, {expected_shape}, got {jnp.shape(leaf)}"
      )


def cast_tree(tree: Any, dtype: Any) -> Any:
  """Casts every leaf of ``tree`` to ``dtype``."""
  return jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)


def time_expand(a: jax.Array, x_ndim: int) -> jax.Array:
  """Reshapes a ``(T,)`` or ``(T, C)`` array to broadcast against ``[T, *batch, C]``."""
  middle = (1,) * (x_ndim - a.ndim)
  return a.reshape(a.shape[:1] + middle + a.shape[1:])


def check_constants(constants: Any, cls: type) -> Any:
  """Returns ``constants`` validated (``cls.validated``) or raises naming what was given."""
  if not isinstance(constants, cls):
    raise TypeError(f"constants must be {cls.__name__}, got {type(constants).__name__}")
  return constants.validated()
