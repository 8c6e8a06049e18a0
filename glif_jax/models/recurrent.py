r"""Recurrent networks for sequences: a recurrent spiking network and a GRU baseline.

Both read a batch-major input as a sequence, one time step per row of an image (sequential
MNIST), per pixel, or per frame of a sequence ``[B, T, F]`` (SHD)::

    rows:      images [B, H, W, C] -> [T = H,   B, W·C]
    pixels:    images [B, H, W, C] -> [T = H·W, B, C]
    sequence:  frames [B, T, F]    -> [T,       B, F]

optionally with the time steps in a fixed order drawn from a seed (permuted sequential
MNIST), then run one recurrent hidden layer of ``width`` units over time. The readout is
the mean over time of a linear layer of the hidden activity: the model returns the
per-step logits ``[T, B, classes]`` and the loss and the accuracy average them over T, as
for every model of the zoo (for the spiking network, a linear readout of the hidden
layer's spike counts).

- `RecurrentSNN`: `glif_jax.nn.Recurrent` of any neuron, ``I_t = W_in·x_t +
  s_{t−1}·W_rec + b``: ``(F + width + 1)·width + (width + 1)·classes`` weights, plus the
  neuron's own parameters (GLIF: (7 + T)·width).
- `RecurrentGRU`: `flax.nnx.GRUCell`, the non-spiking baseline: ``3·(F + width +
  1)·width + (width + 1)·classes`` weights. At ``width = 70`` it has 21 500 weights on
  sequential MNIST's rows, the spiking network of width 128 21 386 (`GRU_ROWS_WIDTH`).
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from glif_jax import nn as snn
from glif_jax._checks import check_choice
from glif_jax.models import _layers

LAYOUTS = ("rows", "pixels", "sequence")
PERMUTATION_SEED = 0  # the fixed order of permuted sequential MNIST's rows
GRU_ROWS_WIDTH = 70  # the GRU's width at the weights of the spiking network of width 128


def sequence_length(layout: str, input_size: int | None, timesteps: int) -> int:
  """T of a ``layout``: the rows (``input_size``) or pixels (its square) of an image, or
  ``timesteps`` frames of a sequence."""
  check_choice("layout", layout, LAYOUTS)
  if layout == "sequence":
    return timesteps
  if input_size is None:
    raise ValueError(f"layout {layout!r} reads images: input_size must be given, got None")
  return input_size if layout == "rows" else input_size**2


def time_order(length: int, seed: int | None) -> np.ndarray | None:
  """A fixed permutation of ``length`` time steps drawn from ``seed`` (None: in order)."""
  return None if seed is None else np.random.default_rng(seed).permutation(length)


class SequenceInput(nnx.Module):
  """Checks a batch-major input and makes it a time-major sequence ``[T, B, F]``.

  Args:
    layout: one of `LAYOUTS` (the module docstring).
    timesteps: T; it must equal the layout's sequence length (`sequence_length`).
    in_channels: C of images, F of sequences.
    input_size: the side H = W of images; None for sequences.
    permutation_seed: reorder the time steps by `time_order` of this seed (None: keep).
    dtype: compute dtype the input is cast to.
  """

  def __init__(
    self,
    layout: str,
    *,
    timesteps: int,
    in_channels: int,
    input_size: int | None,
    permutation_seed: int | None,
    dtype: Any,
  ):
    length = sequence_length(layout, input_size, timesteps)
    if timesteps != length:
      raise ValueError(
        f"layout {layout!r} of {input_size}x{input_size} images has {length} time steps: "
        f"timesteps must be {length}, got {timesteps}"
      )
    side = input_size or 0
    self.layout = layout
    self.example_shape = (
      (timesteps, in_channels) if layout == "sequence" else (side, side, in_channels)
    )
    self.features = {"rows": side * in_channels, "pixels": in_channels}.get(layout, in_channels)
    order = time_order(timesteps, permutation_seed)
    self.order = None if order is None else tuple(int(i) for i in order)
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    """``[B, *example_shape]`` -> ``[T, B, features]``."""
    x = jnp.asarray(x)
    if x.shape[1:] != self.example_shape or x.ndim != len(self.example_shape) + 1:
      raise ValueError(
        f"input must have shape [B, {', '.join(map(str, self.example_shape))}] "
        f"(layout {self.layout!r}), got shape {x.shape}"
      )
    batch = x.shape[0]
    steps = x.reshape(batch, -1, self.features)  # rows, pixels or frames in reading order
    steps = jnp.swapaxes(steps, 0, 1).astype(self.dtype)
    return steps if self.order is None else steps[jnp.asarray(self.order)]


@_layers.init_signature
class RecurrentSNN(nnx.Module):
  """A recurrent spiking network: sequence → `glif_jax.nn.Recurrent` → linear readout.

  Logits ``[T, B, classes]``: a linear layer of the hidden spikes at every step; the
  readout is their mean over T (the module docstring).

  Args:
    layout: how the input is read as a sequence (`LAYOUTS`).
    width: the hidden layer's neurons.
    timesteps: T, the sequence length of the layout (GLIF's conductance has T rows).
    in_channels, input_size: as `SequenceInput`.
    num_classes: number of logits.
    permutation_seed: as `SequenceInput`.
    neuron: one of `glif_jax.models.NEURON_NAMES` (GLIF per channel; KLIF's k and PLIF's
      τ one per layer).
    neuron_options: keyword arguments of the neuron module.
    dtype: compute dtype; parameters stay float32.
    rngs: parameter initialisation.
  """

  has_norm: ClassVar[bool] = False
  fixed_input_size: ClassVar[bool] = True  # images: rows or pixels of input_size² inputs
  has_blocks: ClassVar[bool] = False

  def __init__(
    self,
    *,
    layout: str,
    width: int,
    timesteps: int,
    in_channels: int,
    num_classes: int,
    input_size: int | None = None,
    permutation_seed: int | None = None,
    neuron: str = "glif",
    neuron_options: Mapping[str, Any] | None = None,
    dtype: Any = jnp.float32,
    rngs: nnx.Rngs,
  ):
    self.sequence = SequenceInput(
      layout,
      timesteps=timesteps,
      in_channels=in_channels,
      input_size=input_size,
      permutation_seed=permutation_seed,
      dtype=dtype,
    )
    make_neuron = _layers.neuron_def(neuron, timesteps, **(neuron_options or {}))
    self.hidden = snn.Recurrent(
      self.sequence.features, make_neuron(width, rngs=rngs), channels=width, dtype=dtype, rngs=rngs
    )
    self.readout = nnx.Linear(width, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits ``[T, B, classes]`` of a batch-major input (the layout's shape)."""
    spikes, _ = self.hidden(self.sequence(x))
    return self.readout(spikes).astype(jnp.float32)


@_layers.init_signature
class RecurrentGRU(nnx.Module):
  """The non-spiking baseline: sequence → GRU (`flax.nnx.GRUCell`) → linear readout.

  Logits ``[T, B, classes]`` of the hidden state at every step, read out as the mean
  over T, as `RecurrentSNN`. Arguments as `RecurrentSNN`'s; it has no spiking neurons, so
  ``neuron`` (every config names one) is not used and ``neuron_options`` must be empty.
  """

  has_norm: ClassVar[bool] = False
  fixed_input_size: ClassVar[bool] = True  # images: rows or pixels of input_size² inputs
  has_blocks: ClassVar[bool] = False

  def __init__(
    self,
    *,
    layout: str,
    width: int,
    timesteps: int,
    in_channels: int,
    num_classes: int,
    input_size: int | None = None,
    permutation_seed: int | None = None,
    neuron: str | None = None,
    neuron_options: Mapping[str, Any] | None = None,
    dtype: Any = jnp.float32,
    rngs: nnx.Rngs,
  ):
    del neuron  # not used: see the docstring
    if neuron_options:
      raise ValueError(
        f"the GRU has no spiking neurons: neuron_options must be empty, got {neuron_options}"
      )
    self.sequence = SequenceInput(
      layout,
      timesteps=timesteps,
      in_channels=in_channels,
      input_size=input_size,
      permutation_seed=permutation_seed,
      dtype=dtype,
    )
    cell = nnx.GRUCell(self.sequence.features, width, dtype=dtype, rngs=rngs)
    self.gru = nnx.RNN(cell, time_major=True, rngs=False)  # the state holds arrays only
    self.width = width
    self.readout = nnx.Linear(width, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Logits ``[T, B, classes]`` of a batch-major input (the layout's shape)."""
    steps = self.sequence(x)
    rest = jnp.zeros((steps.shape[1], self.width), steps.dtype)  # no draws: rngs=False
    hidden = typing.cast(jax.Array, self.gru(steps, initial_carry=rest))  # return_carry=False
    return self.readout(hidden).astype(jnp.float32)


_ROWS = {"layout": "rows", "input_size": 28}
SRNNRows = functools.partial(RecurrentSNN, width=128, **_ROWS)
SRNNRowsPermuted = functools.partial(SRNNRows, permutation_seed=PERMUTATION_SEED)
SRNNPixels = functools.partial(RecurrentSNN, layout="pixels", width=128, input_size=28)
SRNNSequence = functools.partial(RecurrentSNN, layout="sequence", width=128)
GRURows = functools.partial(RecurrentGRU, width=GRU_ROWS_WIDTH, **_ROWS)
GRURowsPermuted = functools.partial(GRURows, permutation_seed=PERMUTATION_SEED)
