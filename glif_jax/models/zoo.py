"""`create`: the model zoo by name, each model with its paper's layout, norm and neuron."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
from flax import nnx

from glif_jax import surrogates
from glif_jax.models import _layers, plif_net, resnet, sew, small

# The neuron of the GLIF authors' CIFAR10-DVS code (cifar10dvs/layers.py, not the CIFAR
# one): V_th = 0.99999, τ = 0.5, conductance 0.9, linear decay V_th/(2·16) for their
# fixed steps = 16, reset potential = V_th, gate logits from U(−0.1, 0.1) whatever gate
# list the network passes.
DVS_GLIF = {
  "tau": 0.5,
  "v_th": 0.99999,
  "leak": 0.99999 / 32,
  "v_reset": 0.99999,
  "conduct": 0.9,
  "gate_init": "random",
}
# SEW-ResNet's DVS128 Gesture neuron: SpikingJelly's MultiStepParametricLIFNode(init_tau=2,
# detach_reset=True) of the cext backend (V_th 1, V_reset 0, ATan surrogate with α = 2).
SEW_PLIF = {"init_tau": 2.0, "detach_reset": True, "surrogate": surrogates.atan(2.0)}
# The PLIF paper's neurons (their codes/models.py and README commands): PLIFNode with
# init_tau 2 or LIFNode with tau 2, both V_th 1, V_reset 0, detached reset, ATan (α = 2).
PLIF_PAPER = {
  "plif": SEW_PLIF,
  "lif": {"tau": 2.0, "detach_reset": True, "surrogate": surrogates.atan(2.0)},
}


@dataclasses.dataclass(frozen=True)
class _Spec:
  """A zoo entry.

  Attributes:
    build: the model variant (a module-level partial).
    norm: its batch norm, one of `_layers.NORM_NAMES`.
    neuron: its neuron when `create` is given none.
    neuron_defaults: per neuron name, initial values that differ from the module's
      defaults (options given to `create` override them).
    flattens: the model fixes its input size (``input_size`` is passed on).
  """

  build: Callable[..., nnx.Module]
  norm: str
  neuron: str = "glif"
  neuron_defaults: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
  flattens: bool = False


_MODELS: dict[str, _Spec] = {
  "resnet19": _Spec(resnet.ResNet19, norm="tdbn"),
  "resnet18": _Spec(resnet.ResNet18, norm="tdbn"),
  # Their ImageNet runs convert every tdBatchNorm to torch.nn.SyncBatchNorm
  # (train.py: convert_sync_batchnorm before DDP, and again before loading for --eval),
  # which keeps the statistics, weight and bias but drops tdBN's α·V_th: plain BN.
  "resnet18ms": _Spec(resnet.ResNet18MS, norm="bn"),
  "resnet34ms": _Spec(resnet.ResNet34MS, norm="bn"),
  "sew_dvs": _Spec(
    sew.SEWResNetDVS,
    norm="bn",
    neuron_defaults={"glif": DVS_GLIF, "glif_f": DVS_GLIF},
    flattens=True,
  ),
  "sew_gesture": _Spec(
    sew.SEWResNetGesture,
    norm="bn",
    neuron="plif",
    neuron_defaults={"plif": SEW_PLIF},
    flattens=True,
  ),
  **{
    f"plif_net_{data}": _Spec(
      build, norm="bn", neuron="plif", neuron_defaults=PLIF_PAPER, flattens=True
    )
    for data, build in (
      ("mnist", plif_net.PLIFNetMNIST),
      ("fmnist", plif_net.PLIFNetMNIST),
      ("nmnist", plif_net.PLIFNetNMNIST),
      ("cifar10", plif_net.PLIFNetCIFAR10),
      ("cifar10dvs", plif_net.PLIFNetCIFAR10DVS),
      ("gesture", plif_net.PLIFNetGesture),
    )
  },
  "cnn_small": _Spec(small.CNNSmall, norm="tdbn", flattens=True),
  "mlp": _Spec(small.MLP, norm="tdbn", flattens=True),
}

MODEL_NAMES = tuple(_MODELS)
# Models that flatten their input's space, so they are built for one input size.
FLATTENING_MODELS = tuple(name for name, spec in _MODELS.items() if spec.flattens)
NEURON_NAMES = _layers.NEURON_NAMES
NORM_NAMES = _layers.NORM_NAMES


def _check_positive(**values: Any) -> None:
  for name, value in values.items():
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
      raise ValueError(f"{name} must be a positive int, got {value!r}")


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
    name: one of `MODEL_NAMES`: ``"resnet19"``, ``"resnet18"`` (CIFAR; the head has two
      bias-free FCs 512→256→classes for ≤ 50 classes, else one), ``"resnet18ms"``,
      ``"resnet34ms"`` (ImageNet, membrane shortcut), ``"sew_dvs"`` (CIFAR10-DVS, 48×48
      frames), ``"sew_gesture"`` (SEW-ResNet's DVS128 Gesture net, 128×128 frames),
      ``"plif_net_<data>"`` for data in mnist, fmnist, nmnist, cifar10, cifar10dvs,
      gesture (the PLIF paper's networks, SpikingJelly's ``parametric_lif_net.py``; their
      output is the voting layer's per-step class rate), ``"cnn_small"``, ``"mlp"``
      (MNIST-like, ours).
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
      authors ran them).
    width: base width (default: the paper's: resnet19 128, resnet18/MS 64, sew_dvs 64,
      sew_gesture 32, plif_net_* 128 (cifar10: 256), cnn_small 16, mlp 256 hidden units);
      every layer's width scales with it except the ResNet head's 256 and the PLIF nets'
      hidden FC (2048; 512 on the DVS sets).
    input_size: side H = W of the input, for the models that flatten it (sew_dvs: 48,
      sew_gesture: 128, cnn_small and mlp: 28 by default; plif_net_*: 28, 34 for nmnist,
      32 for cifar10, 128 for cifar10dvs and gesture); the others pool globally,
      accept any size and ignore it.
    remat: checkpoint each residual block of the ResNets and each layer of the SEW and
      PLIF nets (less activation memory, one more forward pass of compute); small models
      ignore it.
    bn_axis_name: pmap/shard_map axis over which BN averages batch statistics.
    dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay float32.
    rngs: parameter initialisation (GLIF's random gates too); the PLIF nets keep a
      ``dropout`` stream (the ``default`` one when ``rngs`` has none).

  Returns:
    The `nnx.Module`.

  Raises:
    ValueError: an unknown name, neuron or norm, a neuron option the neuron does not
      take, or a bad argument.

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from glif_jax import models
    >>> model = models.create("mlp", num_classes=10, timesteps=2, in_channels=1, width=8,
    ...                       rngs=nnx.Rngs(0))
    >>> model(jnp.zeros((3, 28, 28, 1))).shape
    (2, 3, 10)
  """
  if name not in _MODELS:
    raise ValueError(f"model name must be one of {MODEL_NAMES}, got {name!r}")
  _check_positive(
    num_classes=num_classes,
    timesteps=timesteps,
    in_channels=in_channels,
    width=width,
    input_size=input_size,
  )
  if neuron_options is not None and not isinstance(neuron_options, Mapping):
    raise ValueError(f"neuron_options must be a dict or None, got {neuron_options!r}")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"dtype must be a floating-point dtype, got {dtype!r}")
  spec = _MODELS[name]
  neuron = spec.neuron if neuron is None else neuron
  options = {**spec.neuron_defaults.get(neuron, {}), **(neuron_options or {})}
  kwargs = {"width": width} if width is not None else {}
  if spec.flattens and input_size is not None:
    kwargs["input_size"] = input_size
  return spec.build(
    in_channels=in_channels,
    num_classes=num_classes,
    timesteps=timesteps,
    neuron=_layers.neuron_def(neuron, timesteps, **options),
    norm=_layers.norm_def(spec.norm if norm is None else norm, axis_name=bn_axis_name, dtype=dtype),
    dtype=dtype,
    remat=remat,
    rngs=rngs,
    **kwargs,
  )
