"""Building blocks shared by the model zoo: layer constructors, encoder, pooling, heads.

Models follow the Flax examples' pattern: a network takes *layer definitions* (callables
that build a layer, with their settings bound by `functools.partial`) and hands them to its
blocks; model variants are module-level partials of one class (``ResNet19 = partial(...)``).

- a `NeuronDef` builds a neuron layer: ``neuron(channels, *, rngs)``;
- a `NormDef` builds a batch norm: ``norm(channels, *, residual=False, rngs)``, where
  ``residual`` marks the second BN of a residual block and the shortcut BN (tdBN's α = 1/√2);
- blocks take them with ``rngs`` bound (`BoundNeuronDef`, `BoundNormDef`, see `network_layers`);
- a conv definition is `nnx.Conv` with its dtype, initialiser and ``rngs`` bound.

Every synaptic layer here is per-sample (``[N, ...]``); models apply it to time-major
activations with `glif_jax.nn.fold_time`, so a convolution runs once on ``[T·B, ...]``
and only the neurons scan over T.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

import jax
import jax.numpy as jnp
from flax import nnx

from glif_jax import neurons
from glif_jax import nn as snn

NEURON_NAMES = ("glif", "glif_f", "klif", "lif", "plif")
NORM_NAMES = ("tdbn", "bn")

# tdBN's α on the second BN of a residual block and on the shortcut BN (Zheng et al. 2021).
RESIDUAL_BN_ALPHA = 1 / math.sqrt(2)

# The GLIF authors' static networks (`_initialize_weights`): PyTorch's
# kaiming_normal_(mode="fan_out", nonlinearity="relu") for convolutions (an untruncated
# normal: JAX's "normal", not Flax's truncated default) and normal(0, 0.01) for the
# bias-free linears.
KAIMING_FAN_OUT = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")
LINEAR_NORMAL = nnx.initializers.normal(0.01)
# PyTorch's default Conv2d / Linear weight: kaiming_uniform_(a=√5) = U(±1/√fan_in) (the
# SEW networks keep it).
TORCH_DEFAULT = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


class NeuronDef(Protocol):
  """Builds a neuron layer for ``channels`` channels."""

  def __call__(self, channels: int, *, rngs: nnx.Rngs) -> snn.SpikingNeuron: ...


class NormDef(Protocol):
  """Builds a batch norm; ``residual``: a block's second BN or its shortcut BN."""

  def __call__(self, channels: int, *, residual: bool = False, rngs: nnx.Rngs) -> nnx.Module: ...


class BoundNeuronDef(Protocol):
  """A `NeuronDef` with ``rngs`` bound."""

  def __call__(self, channels: int) -> snn.SpikingNeuron: ...


class BoundNormDef(Protocol):
  """A `NormDef` with ``rngs`` bound."""

  def __call__(self, channels: int, *, residual: bool = False) -> nnx.Module: ...


ModuleT = TypeVar("ModuleT", bound=type[nnx.Module])


def init_signature(cls: ModuleT) -> ModuleT:
  """Class decorator: ``inspect.signature(cls)`` lists the keywords of ``cls.__init__``.

  nnx's metaclass would show ``(*args, **kwargs)``; this shows what the model takes, and
  so do the variants (``functools.partial``s of ``cls``), with their defaults.
  """
  parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # less self
  cls.__signature__ = inspect.Signature(parameters)
  return cls


_NEURON_CLASSES = {
  "glif": snn.GLIF,
  "glif_f": snn.GLIF,
  "klif": snn.KLIF,
  "lif": snn.LIF,
  "plif": snn.PLIF,
}


def _per_layer(cls: type[snn.SpikingNeuron], options: dict[str, Any]) -> NeuronDef:
  """KLIF's k, PLIF's τ: one per layer (the papers'); LIF has no parameters."""

  def make(channels: int, *, rngs: nnx.Rngs) -> snn.SpikingNeuron:
    del channels, rngs
    return cls(**options)

  return make


# The keywords a model sets on its GLIF neurons itself.
_GLIF_SET_BY_MODEL = frozenset({"timesteps", "simplified", "channels"})


def neuron_options(name: str) -> frozenset[str]:
  """The option names neuron ``name`` takes: its module's keyword-only parameters, and for
  KLIF, PLIF and LIF the fields of `glif_jax.neurons.LIFConstants` less those it refuses.

  Raises:
    ValueError: an unknown name.
  """
  if name not in NEURON_NAMES:
    raise ValueError(f"neuron must be one of {NEURON_NAMES}, got {name!r}")
  cls = _NEURON_CLASSES[name]
  keywords = {
    p.name
    for c in cls.__mro__
    if "__init__" in vars(c) and issubclass(c, snn.SpikingNeuron)
    for p in inspect.signature(c.__init__).parameters.values()
    if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "rngs"
  }
  if cls is not snn.GLIF:  # the LIF family's **options are the constants' fields
    keywords |= set(neurons.LIFConstants._fields) - set(getattr(cls, "_refused", ()))
  return frozenset(keywords - _GLIF_SET_BY_MODEL)


def neuron_def(name: str, timesteps: int, /, **options: Any) -> NeuronDef:
  """The constructor of neuron layer ``name`` with ``options`` bound.

  GLIF and GLIF_f are channel-wise ((7 + T)·C parameters, the paper's); KLIF's k and
  PLIF's τ are one per layer; LIF has no parameters. The option names are checked here
  against `neuron_options` (their values by the neuron module, when it is built).

  Args:
    name: one of `NEURON_NAMES`.
    timesteps: T (GLIF's conductance has one row per step).
    **options: keyword arguments of the neuron module (`glif_jax.nn.GLIF`, `KLIF`, ...).

  Raises:
    ValueError: an unknown name, or an option the neuron module does not take.
  """
  accepted = neuron_options(name)
  cls = _NEURON_CLASSES[name]
  if cls is snn.GLIF:
    reserved = _GLIF_SET_BY_MODEL & set(options)
    if reserved:
      raise ValueError(f"neuron_options may not set {sorted(reserved)}: the model sets them")
  unknown = set(options) - accepted
  if unknown:
    raise ValueError(
      f"invalid neuron_options {options} for {name!r}: {cls.__name__} takes no "
      f"{sorted(unknown)}; it takes {sorted(accepted)}"
    )
  if cls is snn.GLIF:
    return functools.partial(cls, timesteps=timesteps, simplified=name == "glif_f", **options)
  return _per_layer(cls, options)


# Per neuron name, the initial values a model variant starts that neuron from.
NeuronDefaults = Mapping[str, Mapping[str, Any]]


class Layers(NamedTuple):
  """A network's layer definitions, built once by `network_layers` from its options.

  Attributes:
    neuron: the `BoundNeuronDef`.
    norm: the `BoundNormDef`.
    conv: the bias-free conv definition (`conv_def`).
    encoder: ``encoder(layer)``, the network's `Encoder` around its first layer.
    dtype: compute dtype.
    rngs: parameter initialisation.
  """

  neuron: BoundNeuronDef
  norm: BoundNormDef
  conv: Callable[..., nnx.Conv]
  encoder: Callable[[Callable[[jax.Array], jax.Array]], Encoder]
  dtype: Any
  rngs: nnx.Rngs


def network_layers(
  conv_init: nnx.Initializer,
  *,
  input_size: int | None,
  in_channels: int,
  timesteps: int,
  norm: str,
  neuron: str = "glif",
  neuron_options: Mapping[str, Any] | None = None,
  neuron_defaults: NeuronDefaults | None = None,
  bn_axis_name: str | None = None,
  dtype: Any = jnp.float32,
  rngs: nnx.Rngs,
) -> Layers:
  """The layer definitions of a network, from the options its constructor takes.

  Args:
    conv_init: the convolutions' kernel initialiser.
    input_size: the side H = W the network needs (flattening networks), None for any.
    in_channels: C of the input.
    timesteps: T.
    norm: one of `NORM_NAMES`.
    neuron: one of `NEURON_NAMES`.
    neuron_options: keyword arguments of the neuron module; they override
      ``neuron_defaults[neuron]``.
    neuron_defaults: the variant's initial values per neuron name (None: the modules').
    bn_axis_name: pmap/shard_map axis over which BN averages batch statistics.
    dtype: compute dtype; parameters stay float32.
    rngs: parameter initialisation.

  Raises:
    ValueError: an unknown neuron or norm, or an option the neuron module does not take.
  """
  options = {**(neuron_defaults or {}).get(neuron, {}), **(neuron_options or {})}
  return Layers(
    neuron=functools.partial(neuron_def(neuron, timesteps, **options), rngs=rngs),
    norm=functools.partial(norm_def(norm, axis_name=bn_axis_name, dtype=dtype), rngs=rngs),
    conv=conv_def(conv_init, dtype=dtype, rngs=rngs),
    encoder=functools.partial(
      Encoder, timesteps=timesteps, in_channels=in_channels, input_size=input_size, dtype=dtype
    ),
    dtype=dtype,
    rngs=rngs,
  )


def norm_def(name: str, *, axis_name: str | None, dtype: Any) -> NormDef:
  """The batch-norm constructor ``name``: ``"tdbn"`` or ``"bn"``.

  ``"tdbn"``: threshold-dependent BN with V_th = 0.5 and α = 1/√2 where ``residual`` (the
  authors' `tdBatchNorm`). ``"bn"``: PyTorch's ``BatchNorm2d`` on ``[T·B, C, H, W]``,
  i.e. the same statistics over T·B·H·W with α·V_th = 1 (``residual`` changes nothing).
  Both: momentum 0.1 (PyTorch's convention), eps 1e-5, scale 1 and bias 0 at init.

  Args:
    name: one of `NORM_NAMES`.
    axis_name: pmap/shard_map axis over which batch statistics are averaged.
    dtype: compute dtype.
  """
  if name not in NORM_NAMES:
    raise ValueError(f"norm must be one of {NORM_NAMES}, got {name!r}")

  def make(channels: int, *, residual: bool = False, rngs: nnx.Rngs) -> snn.TdBatchNorm:
    del rngs  # BN draws nothing; taken as every layer definition takes it
    if name == "bn":
      return snn.TdBatchNorm(channels, v_th=1.0, axis_name=axis_name, dtype=dtype)
    alpha = RESIDUAL_BN_ALPHA if residual else 1.0
    return snn.TdBatchNorm(channels, alpha=alpha, axis_name=axis_name, dtype=dtype)

  return make


def pooled_side(input_size: int, pools: int) -> int:
  """The side of a square ``input_size`` map after ``pools`` 2x2 poolings.

  Raises:
    ValueError: the map would vanish (side < 1).
  """
  side = input_size // 2**pools
  if side < 1:
    raise ValueError(f"input_size must be >= {2**pools} for {pools} 2x2 poolings, got {input_size}")
  return side


def conv_def(init: nnx.Initializer, *, dtype: Any, rngs: nnx.Rngs) -> Callable[..., nnx.Conv]:
  """Bias-free `nnx.Conv` with ``init``; call it as ``conv(cin, cout, (k, k), strides=, padding=)``."""
  return functools.partial(nnx.Conv, use_bias=False, kernel_init=init, dtype=dtype, rngs=rngs)


class ConvNorm(nnx.Module):
  """A per-sample convolution then batch norm: ``[N, H, W, C] -> [N, H', W', C']``."""

  def __init__(self, conv: nnx.Conv, norm: nnx.Module):
    self.conv = conv
    self.norm = norm

  def __call__(self, x: jax.Array, *, spikes_in: bool = False) -> jax.Array:
    """``spikes_in``: ``x`` is spikes, which the backward pass keeps as one byte each
    (`glif_jax.nn.lean_apply`)."""
    return self.norm(snn.lean_apply(self.conv, x, spikes_in=True) if spikes_in else self.conv(x))


class ConvSpike(nnx.Module):
  """`ConvNorm` with T folded into the batch, then a neuron: ``[T, B, H, W, C]`` → spikes."""

  def __init__(self, conv_norm: ConvNorm, neuron: snn.SpikingNeuron):
    self.conv_norm = conv_norm
    self.neuron = neuron

  def __call__(self, x: jax.Array, *, spikes_in: bool = False) -> jax.Array:
    """``spikes_in`` as in `ConvNorm`."""
    conv_norm = functools.partial(self.conv_norm, spikes_in=spikes_in)
    return fire(self.neuron, snn.fold_time(conv_norm, x))


def fire(neuron: snn.SpikingNeuron, x: jax.Array) -> jax.Array:
  """Runs a neuron layer on ``x [T, ...]`` from rest and keeps only its spikes."""
  spikes, _ = neuron(x)
  return spikes


def check_input(
  x: jax.Array, *, timesteps: int, in_channels: int, input_size: int | None, dtype: Any
) -> jax.Array:
  """Checks a model input and casts it to the compute dtype.

  Args:
    x: static images ``[B, H, W, C]`` or event frames ``[T, B, H, W, C]``.
    timesteps: the model's T (event frames must have it).
    in_channels: the model's C.
    input_size: the side H = W the model was built for, or None for any size.
    dtype: the compute dtype.

  Returns:
    ``x`` in ``dtype``.
  """
  x = jnp.asarray(x)
  if x.ndim not in (4, 5):
    raise ValueError(
      "input must be static images [B, H, W, C] (rank 4) or event frames "
      f"[T, B, H, W, C] (rank 5), got shape {x.shape}"
    )
  if x.shape[-1] != in_channels:
    raise ValueError(
      f"input must have in_channels={in_channels} channels (last axis), got shape {x.shape}"
    )
  if x.ndim == 5 and x.shape[0] != timesteps:
    raise ValueError(
      f"event input [T, B, H, W, C] must have T = timesteps = {timesteps}, got shape {x.shape}"
    )
  if input_size is not None and x.shape[-3:-1] != (input_size, input_size):
    raise ValueError(
      f"this model was built for {input_size}x{input_size} inputs (input_size={input_size}), "
      f"got shape {x.shape}"
    )
  return x.astype(dtype)


class Encoder(nnx.Module):
  """Checks the model input and runs the first, non-spiking layer: ``[T, B, ...]`` out.

  Direct encoding: a static image ``[B, H, W, C]`` is the same at every time step, so
  ``layer`` (the first convolution and BN) runs once on ``[B, ...]`` and its result is
  repeated over T, with the same output as the authors' ``x.repeat(T)`` (BN sees T identical copies, whose mean and variance are the
  single copy's). Event frames ``[T, B, H, W, C]`` go through ``layer`` with T folded
  into the batch.

  Args:
    layer: per-sample first layer(s), ``[N, H, W, C] -> [N, ...]``.
    timesteps: T.
    in_channels: C of the input.
    input_size: the side H = W the model needs (flattening models), None for any.
    dtype: compute dtype the input is cast to.
  """

  def __init__(
    self,
    layer: Callable[[jax.Array], jax.Array],
    *,
    timesteps: int,
    in_channels: int,
    input_size: int | None,
    dtype: Any,
  ):
    self.layer = layer
    self.timesteps = timesteps
    self.in_channels = in_channels
    self.input_size = input_size
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    x = check_input(
      x,
      timesteps=self.timesteps,
      in_channels=self.in_channels,
      input_size=self.input_size,
      dtype=self.dtype,
    )
    if x.ndim == 4:
      y = self.layer(x)
      return jnp.broadcast_to(y[None], (self.timesteps, *y.shape))
    return snn.fold_time(self.layer, x)


def global_avg_pool(x: jax.Array) -> jax.Array:
  """Mean over the spatial axes of ``[..., H, W, C]``: ``[..., C]``."""
  return jnp.mean(x, axis=(-3, -2))


def flatten(x: jax.Array) -> jax.Array:
  """``[N, ...] -> [N, F]``."""
  return x.reshape(x.shape[0], -1)


def flatten_chw(x: jax.Array) -> jax.Array:
  """``[N, H, W, C] -> [N, C·H·W]`` in PyTorch's (C, H, W) order, as ``nn.Flatten`` on NCHW."""
  return flatten(jnp.moveaxis(x, -1, 1))


def _pool_2x2(x: jax.Array, reduce: Callable[..., jax.Array]) -> jax.Array:
  n, h, w, c = x.shape
  x = x[:, : h // 2 * 2, : w // 2 * 2]
  return reduce(x.reshape(n, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def avg_pool(x: jax.Array) -> jax.Array:
  """2×2 average pooling with stride 2 on ``[N, H, W, C]`` (odd sides drop their last row).

  Written as a reshape and mean rather than a ``reduce_window`` (the claim on speed is
  in ``bench/README.md``); the result is `nnx.avg_pool`'s.
  """
  return _pool_2x2(x, jnp.mean)


def max_pool(x: jax.Array) -> jax.Array:
  """2×2 max pooling with stride 2 on ``[N, H, W, C]`` (as `avg_pool`, with max)."""
  return _pool_2x2(x, jnp.max)


def _call(block: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
  return block(x)


_remat_call = nnx.remat(_call)


def run_blocks(blocks: Sequence[nnx.Module], x: jax.Array, *, remat: bool) -> jax.Array:
  """Applies ``blocks`` in order; with ``remat`` each one is checkpointed (`nnx.remat`).

  Checkpointed, a block keeps only its input for the backward pass and recomputes its
  insides there, so activation memory holds one block's internals instead of all of them.
  """
  call = _remat_call if remat else _call
  for block in blocks:
    x = call(block, x)
  return x


class Classifier(nnx.Module):
  """``[T, B, F] -> [T, B, classes]``: (FC + neuron) per hidden size, then FC; FCs with bias.

  Args:
    features: F.
    hidden: sizes of the hidden spiking layers (may be empty).
    num_classes: number of logits.
    neuron: the `BoundNeuronDef`.
    dtype: compute dtype.
    rngs: parameter initialisation.
  """

  def __init__(
    self,
    features: int,
    hidden: tuple[int, ...],
    num_classes: int,
    *,
    neuron: BoundNeuronDef,
    dtype: Any,
    rngs: nnx.Rngs,
  ):
    sizes = (features, *hidden)
    self.fcs = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(sizes, hidden)])
    self.neurons = nnx.List([neuron(h) for h in hidden])
    self.head = nnx.Linear(sizes[-1], num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    for fc, neuron in zip(self.fcs, self.neurons):
      x = fire(neuron, snn.fold_time(fc, x))
    return snn.fold_time(self.head, x).astype(jnp.float32)
