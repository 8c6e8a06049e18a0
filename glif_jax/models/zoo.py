"""`create`: the model zoo by name, each model with its paper's layout, norm and neuron.

The names (`MODEL_NAMES`):

- ``"resnet19"``, ``"resnet18"``: CIFAR (the head has two bias-free FCs 512→256→classes
  for ≤ 50 classes, else one); ``"resnet18ms"``, ``"resnet34ms"``: ImageNet, membrane
  shortcut;
- ``"sew_dvs"``: CIFAR10-DVS, 48×48 frames; ``"sew_gesture"``: SEW-ResNet's DVS128
  Gesture net, 128×128 frames;
- ``"plif_net_<data>"`` for data in mnist, fmnist, nmnist, cifar10, cifar10dvs, gesture:
  the PLIF paper's networks (SpikingJelly's ``parametric_lif_net.py``), whose output is
  the voting layer's per-step class rate;
- ``"cnn_small"``, ``"mlp"``: MNIST-like, ours;
- the recurrent networks of `glif_jax.models.recurrent`: ``"srnn_rows"``,
  ``"srnn_rows_permuted"``, ``"srnn_pixels"`` (sequential MNIST by rows, in a fixed
  shuffled order, by pixels; 128 neurons), ``"srnn_sequence"`` (sequences ``[B, T, F]``,
  SHD; 128 neurons), ``"gru_rows"``, ``"gru_rows_permuted"`` (the GRU baseline at the
  spiking network's weight count, 70 units).

Default widths (``width=None``): resnet19 128, resnet18/MS 64, sew_dvs 64, sew_gesture 32,
plif_net_* 128 (cifar10: 256), cnn_small 16, mlp 256 hidden units. Every layer's width
scales with it except the ResNet head's 256 and the PLIF nets' hidden FC (2048; 512 on
the DVS sets). Default input sides of the models that flatten their input: sew_dvs 48,
sew_gesture 128, cnn_small and mlp 28, plif_net_* 28 (nmnist 34, cifar10 32, cifar10dvs
and gesture 128).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax.numpy as jnp
from flax import nnx

from glif_jax._checks import check_positive_int
from glif_jax.models import _layers, plif_net, recurrent, resnet, sew, small


class ModelClass(Protocol):
  """What a model class says of the keywords its variants take."""

  has_norm: bool  # norm and bn_axis_name
  fixed_input_size: bool  # input_size: built for one input size
  has_blocks: bool  # remat: checkpoint each block

  def __call__(self, **kwargs: Any) -> nnx.Module: ...


# Per class, its variants by name: module-level partials carrying their paper's layout,
# norm and neuron defaults. The class's attributes say what its variants take: ``has_norm``
# (``norm``, ``bn_axis_name``), ``fixed_input_size`` (``input_size``), ``has_blocks``
# (``remat``).
_FAMILIES: dict[ModelClass, dict[str, Callable[..., nnx.Module]]] = {
  resnet.SpikingResNet: {
    "resnet19": resnet.ResNet19,
    "resnet18": resnet.ResNet18,
    "resnet18ms": resnet.ResNet18MS,
    "resnet34ms": resnet.ResNet34MS,
  },
  sew.SEWResNet: {"sew_dvs": sew.SEWResNetDVS, "sew_gesture": sew.SEWResNetGesture},
  plif_net.PLIFNet: {
    "plif_net_mnist": plif_net.PLIFNetMNIST,
    "plif_net_fmnist": plif_net.PLIFNetMNIST,
    "plif_net_nmnist": plif_net.PLIFNetNMNIST,
    "plif_net_cifar10": plif_net.PLIFNetCIFAR10,
    "plif_net_cifar10dvs": plif_net.PLIFNetCIFAR10DVS,
    "plif_net_gesture": plif_net.PLIFNetGesture,
  },
  small.SpikingCNN: {"cnn_small": small.CNNSmall},
  small.SpikingMLP: {"mlp": small.MLP},
  recurrent.RecurrentSNN: {
    "srnn_rows": recurrent.SRNNRows,
    "srnn_rows_permuted": recurrent.SRNNRowsPermuted,
    "srnn_pixels": recurrent.SRNNPixels,
    "srnn_sequence": recurrent.SRNNSequence,
  },
  recurrent.RecurrentGRU: {
    "gru_rows": recurrent.GRURows,
    "gru_rows_permuted": recurrent.GRURowsPermuted,
  },
}
_CLASSES = {name: cls for cls, variants in _FAMILIES.items() for name in variants}
_VARIANTS = {name: v for variants in _FAMILIES.values() for name, v in variants.items()}

MODEL_NAMES = tuple(_VARIANTS)
# Models that take ``input_size``: they flatten their input (or read it as a sequence), so
# they are built for one input size.
FLATTENING_MODELS = tuple(name for name, cls in _CLASSES.items() if cls.fixed_input_size)
NEURON_NAMES = _layers.NEURON_NAMES
NORM_NAMES = _layers.NORM_NAMES
# Where tests/models/test_paper_networks.py reads it; it lives with its variant.
DVS_GLIF = sew.DVS_GLIF


def create(
  name: str,
  *,
  num_classes: int,
  timesteps: int,
  in_channels: int,
  neuron: str | None = None,
  neuron_options: dict[str, Any] | None = None,
  norm: str | None = None,
  width: int | None = None,
  input_size: int | None = None,
  remat: bool = False,
  bn_axis_name: str | None = None,
  dtype: Any = jnp.float32,
  rngs: nnx.Rngs,
) -> nnx.Module:
  """Builds a spiking network of the zoo.

  The paper networks are the GLIF authors' (``Ikarosy/Gated-LIF`` at ac20aa7) layer for
  layer; the README's "Where we differ" lists what is not. The model maps static images
  ``[B, H, W, C]`` (direct encoding: the first layer runs once and its output is repeated
  over T) or time-major event frames ``[T, B, H, W, C]`` to float32 logits
  ``[T, B, num_classes]``; the readout is their mean over T. Synaptic layers run with T
  folded into the batch; only the neurons scan over time. Use ``model.train()`` /
  ``model.eval()`` to switch BN between batch statistics and running averages.

  Args:
    name: one of `MODEL_NAMES` (listed in the module docstring).
    num_classes: number of logits.
    timesteps: T.
    in_channels: C of the input (3 for images, 2 for DVS polarities, 1 for MNIST).
    neuron: one of `NEURON_NAMES`: ``"glif"``, ``"glif_f"`` (channel-wise),
      ``"klif"``, ``"plif"`` (one parameter per layer), ``"lif"``; None: the model's own
      (GLIF; PLIF for ``sew_gesture`` and the ``plif_net_*`` models).
    neuron_options: keyword arguments of the neuron module (`glif_jax.nn.GLIF`, ...);
      they override the model's neuron defaults (``sew_dvs``'s GLIF starts from the
      authors' DVS values, ``sew_gesture``'s PLIF from SEW's, the ``plif_net_*`` models'
      PLIF and LIF from the PLIF paper's). A misspelt one raises here.
    norm: ``"tdbn"`` or ``"bn"``; None: the model's own (tdBN for the CIFAR ResNets and the
      small models, plain BN for the MS-ResNets, the SEW nets and the PLIF nets, as the
      authors ran them); ``mlp`` has no BN and refuses one.
    width: base width (None: the paper's; see the module docstring).
    input_size: side H = W of the input, for the models that flatten it (None: the
      paper's); the others pool globally, accept any size and ignore it.
    remat: checkpoint each residual block of the ResNets and each layer of the SEW and
      PLIF nets (less activation memory, one more forward pass of compute); the small
      and recurrent models have no blocks and refuse it (TypeError).
    bn_axis_name: pmap/shard_map axis over which BN averages batch statistics (unused by
      ``mlp``, which has no BN).
    dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay float32.
    rngs: parameter initialisation (GLIF's random gates too); the PLIF nets keep a
      ``dropout`` stream (the ``default`` one when ``rngs`` has none).

  Returns:
    The `nnx.Module`.

  Raises:
    ValueError: an unknown name, neuron or norm, a neuron option the neuron does not
      take, a norm for ``mlp``, or a bad argument.
    TypeError: ``remat=True`` for a model without blocks (``cnn_small``, ``mlp``, the
      recurrent ones).

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from glif_jax import models
    >>> model = models.create("mlp", num_classes=10, timesteps=2, in_channels=1, width=8,
    ...                       rngs=nnx.Rngs(0))
    >>> model(jnp.zeros((3, 28, 28, 1))).shape
    (2, 3, 10)
  """
  sizes = {"num_classes": num_classes, "timesteps": timesteps, "in_channels": in_channels}
  _check_arguments(name, {**sizes, "width": width, "input_size": input_size}, neuron_options)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"dtype must be a floating-point dtype, got {dtype!r}")
  cls = _CLASSES[name]
  _check_layout(name, cls, norm, remat)
  paper = {"neuron": neuron, "norm": norm, "width": width}  # None: the variant's default
  if cls.fixed_input_size:
    paper["input_size"] = input_size
  layout: dict[str, Any] = {"bn_axis_name": bn_axis_name} if cls.has_norm else {}
  if cls.has_blocks:
    layout["remat"] = remat
  return _VARIANTS[name](
    num_classes=num_classes,
    timesteps=timesteps,
    in_channels=in_channels,
    neuron_options=neuron_options,
    dtype=dtype,
    rngs=rngs,
    **layout,
    **{key: value for key, value in paper.items() if value is not None},
  )


def _check_arguments(
  name: str, sizes: dict[str, int | None], neuron_options: dict[str, Any] | None
) -> None:
  """Raises ValueError for an unknown ``name``, a size that is not a positive int (None:
  the paper's) or ``neuron_options`` that are not a dict."""
  if name not in _VARIANTS:
    raise ValueError(f"model name must be one of {MODEL_NAMES}, got {name!r}")
  for size, value in sizes.items():
    if value is not None:
      check_positive_int(size, value)
  if neuron_options is not None and not isinstance(neuron_options, Mapping):
    raise ValueError(f"neuron_options must be a dict or None, got {neuron_options!r}")


def _check_layout(name: str, cls: ModelClass, norm: str | None, remat: bool) -> None:
  """Raises for a ``norm`` that is unknown or that the model lacks (ValueError), or
  ``remat`` for a model without blocks (TypeError)."""
  if norm is not None and norm not in NORM_NAMES:
    raise ValueError(f"norm must be one of {NORM_NAMES}, got {norm!r}")
  if norm is not None and not cls.has_norm:
    raise ValueError(f"{name!r} has no batch norm: norm must be None, got {norm!r}")
  if remat and not cls.has_blocks:
    raise TypeError(f"{name!r} has no blocks to checkpoint: remat must be False, got True")
