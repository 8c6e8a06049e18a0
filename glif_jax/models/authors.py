"""The GLIF authors' trained PyTorch checkpoints, loaded into zoo models without PyTorch.

`load_authors_checkpoint` reads a ``.pth``/``.pth.tar`` file of the authors' ``Gated-LIF``
code (`glif_jax.models._torch_zip`, which runs nothing from the file) and writes every
tensor into a model built by `glif_jax.models.create`:

- their module paths map to ours by a few rules per network family (`_RULES`), written in
  network order beside the authors' module tree;
- each tensor converts by the kind of our module it lands in: convolution kernels OIHW →
  HWIO, linear weights transposed, BN and tdBN scale, bias and running statistics (and
  their tdBN's V_th checked against our BN's factor), GLIF raw logits (their
  neurons apply the sigmoid in the forward pass, as ours do), the conductance ``(T, C)``.

Every checkpoint key must be used, every model parameter written and every shape match,
else nothing is written and the error names the key, the expected shape and the given one.
NaN or infinite values and negative running variances are refused the same way unless the
caller opts in (``allow_nonfinite=True``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from glif_jax import nn as snn
from glif_jax.models import resnet, sew
from glif_jax.models._torch_zip import TorchCheckpointError, load_torch_zip

__all__ = [
  "AuthorsCheckpointError",
  "NonFiniteWeightsError",
  "TorchCheckpointError",
  "load_authors_checkpoint",
  "load_authors_state_dict",
]


class AuthorsCheckpointError(ValueError):
  """A checkpoint does not fit the model: unused keys, missing parameters, wrong shapes."""


class NonFiniteWeightsError(ValueError):
  """A checkpoint holds NaN or infinite values, or a negative BN running variance."""


_SHOWN_KEYS = 5


# A rule maps their module path (a regex, full match) to ours: a template formatted with
# the integer groups of the match, each plus its shift (their Sequential indices count
# layers we hold elsewhere, e.g. the stem).
_Rule = tuple[str, str] | tuple[str, str, tuple[int, ...]]


def _resnet_rules(body: tuple[tuple[str, str], ...]) -> tuple[_Rule, ...]:
  """Stem, blocks (their ``features.i`` is our ``blocks.i``; ``body`` as given), head."""
  block = r"features\.(\d+)\."
  return (
    (r"conv1\.0\.0", "stem.layer.conv"),
    (r"conv1\.0\.1", "stem.layer.norm"),
    (r"conv1\.1", "stem_neuron"),
    *((block + rf"body\.{theirs}", f"blocks.{{0}}.{ours}") for theirs, ours in body),
    (block + r"downsample\.0", "blocks.{0}.shortcut"),  # BN(α=1/√2) of the identity
    (block + r"downsample\.0\.0", "blocks.{0}.shortcut.conv"),
    (block + r"downsample\.0\.1", "blocks.{0}.shortcut.norm"),
    (block + r"lif", "blocks.{0}.neuron2"),
    (r"lastave\.(\d+)", "classifier.fcs.{0}"),
  )


# Their conv.i (i >= 1, after the stem conv.0) is our layers.(i-1); a SEW block's conv.j is
# our conv(j+1). Pooling and flatten have no parameters.
_SEW_LAYER = r"conv\.([1-9]\d*)\."
_SEW_RULES: tuple[_Rule, ...] = (  # cifar10dvs/smodels.py ResNetN_GLIF
  (r"conv\.0\.0\.0", "stem.layer.conv"),
  (r"conv\.0\.0\.1", "stem.layer.norm"),
  (r"conv\.0\.1", "stem_neuron"),
  (_SEW_LAYER + r"conv\.([01])\.0\.0", "layers.{0}.conv{1}.conv_norm.conv", (-1, 1)),
  (_SEW_LAYER + r"conv\.([01])\.0\.1", "layers.{0}.conv{1}.conv_norm.norm", (-1, 1)),
  (_SEW_LAYER + r"conv\.([01])\.1", "layers.{0}.conv{1}.neuron", (-1, 1)),
  (_SEW_LAYER + r"0\.0", "layers.{0}.conv_norm.conv", (-1,)),  # conv1x1 up-projection
  (_SEW_LAYER + r"0\.1", "layers.{0}.conv_norm.norm", (-1,)),
  (_SEW_LAYER + r"1", "layers.{0}.neuron", (-1,)),
  (r"out", "classifier"),
)

# Per model class (per block class for `resnet.SpikingResNet`), in network order. Keys are
# those of their `state_dict()` without DDP's "module." prefix.
_RULES: tuple[tuple[type[nnx.Module], tuple[_Rule, ...]], ...] = (
  (  # blocks.py BasicBlock_CW: conv-BN, neuron, conv-BN; then shortcut and neuron (`lif`)
    resnet.BasicBlock,
    _resnet_rules(
      (
        (r"0\.0", "conv1.conv_norm.conv"),
        (r"0\.1", "conv1.conv_norm.norm"),
        (r"1", "conv1.neuron"),
        (r"2\.0", "conv2.conv"),
        (r"2\.1", "conv2.norm"),
      )
    ),
  ),
  (  # blocks.py BasicBlock_CW_MS: neuron, conv-BN, neuron, conv-BN; then shortcut
    resnet.MSBlock,
    _resnet_rules(
      (
        (r"0", "neuron0"),
        (r"1\.0", "conv1.conv_norm.conv"),
        (r"1\.1", "conv1.conv_norm.norm"),
        (r"2", "conv1.neuron"),
        (r"3\.0", "conv2.conv"),
        (r"3\.1", "conv2.norm"),
      )
    ),
  ),
  (sew.SEWResNet, _SEW_RULES),
)


_Permutation = tuple[int, ...] | None
# Their parameter name -> (our variable path, axis permutation to our layout), per kind of
# our module; None marks buffers with no counterpart (tdBN's Vth is checked, not stored).
_ParamMap = Mapping[str, tuple[str, _Permutation] | None]
_CONV: _ParamMap = {"weight": ("kernel", (2, 3, 1, 0))}  # OIHW -> HWIO
_LINEAR: _ParamMap = {"weight": ("kernel", (1, 0)), "bias": ("bias", None)}
_NORM: _ParamMap = {
  "weight": ("scale", None),
  "bias": ("bias", None),
  "running_mean": ("norm.mean", None),
  "running_var": ("norm.var", None),
  "num_batches_tracked": None,
  "Vth": None,
}
_GLIF: _ParamMap = {
  theirs: (ours, None)
  for theirs, ours in zip(
    ("alpha", "beta", "gamma", "tau", "Vth", "leak", "reVth", "conduct"),
    ("alpha", "beta", "gamma", "tau", "v_th", "leak", "v_reset", "conduct"),
  )
}
_PARAMS = ((nnx.Conv, _CONV), (nnx.Linear, _LINEAR), (snn.TdBatchNorm, _NORM), (snn.GLIF, _GLIF))


def _module_params(module: nnx.Module) -> _ParamMap:
  for cls, params in _PARAMS:
    if isinstance(module, cls):
      return params
  return {}


def _to_ours(x: np.ndarray, perm: _Permutation) -> np.ndarray:
  return x.transpose(perm) if perm is not None and x.ndim == len(perm) else x


def _theirs(shape: tuple[int, ...], perm: _Permutation) -> tuple[int, ...]:
  """The checkpoint-layout shape that `_to_ours` maps to ``shape``."""
  return shape if perm is None else tuple(shape[i] for i in np.argsort(perm))


def _walk(node: Any, path: str) -> Any:
  for part in path.split("."):
    node = node[int(part)] if part.isdigit() else getattr(node, part)
  return node


def _norm_factor_error(module_key: str, norm: snn.TdBatchNorm, v_th: np.ndarray | None) -> str:
  """Their tdBN (a ``Vth`` buffer) scales by α·V_th with α = 1 or 1/√2, their plain
  ``BatchNorm2d`` (none) by 1; ours by its ``factor``. An error message, or "" if they agree."""
  if v_th is None:
    if math.isclose(norm.factor, 1.0, rel_tol=1e-6):
      return ""
    return (
      f"{module_key}: a plain BatchNorm2d (no Vth buffer; their multi-GPU runs convert tdBN "
      f"to SyncBatchNorm), but the model's BN multiplies by {norm.factor}: build the model "
      "with norm='bn' (config.norm = 'bn')"
    )
  v = float(v_th)
  if not math.isfinite(v):  # loaded with allow_nonfinite: nothing to compare
    return ""
  if any(math.isclose(norm.factor, v * a, rel_tol=1e-6) for a in (1.0, 1 / math.sqrt(2))):
    return ""
  mismatch = (
    f"{module_key}.Vth = {v:.6g}: a tdBN, but the model's BN multiplies by {norm.factor}, not "
    "by α·V_th for α in (1, 1/√2)"
  )
  if math.isclose(norm.factor, 1.0, rel_tol=1e-6):  # the model's is a plain BN
    return f"{mismatch}: build the model with norm='tdbn' (config.norm = 'tdbn')"
  return f"{mismatch}: the model's tdBN has another V_th"


def _unsound(key: str, tensor: np.ndarray) -> str:
  """Why ``tensor`` may not be loaded (NaN/inf, a negative running variance), or ""."""
  if tensor.dtype.kind not in "biu" and not np.isfinite(tensor).all():
    return "NaN or inf"
  if key.endswith("running_var") and (tensor < 0).any():
    return "a negative variance"
  return ""


def _check_finite(state: dict[str, np.ndarray], name: str) -> None:
  """Raises `NonFiniteWeightsError` naming up to `_SHOWN_KEYS` unsound tensors."""
  unsound = [f"{key} ({why})" for key, tensor in state.items() if (why := _unsound(key, tensor))]
  if unsound:
    more = f" and {len(unsound) - _SHOWN_KEYS} more" if len(unsound) > _SHOWN_KEYS else ""
    raise NonFiniteWeightsError(
      f"{name}: {len(unsound)} tensors hold NaN/inf or a negative running variance: "
      f"{', '.join(unsound[:_SHOWN_KEYS])}{more}; pass allow_nonfinite=True to load them anyway"
    )


def _state_dict(ckpt: Any, path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """The model's state dict and the checkpoint's other entries."""
  if isinstance(ckpt, dict) and "state_dict" in ckpt:  # networks_for_CIFAR.py + train.py
    state, rest = ckpt["state_dict"], {k: v for k, v in ckpt.items() if k != "state_dict"}
  elif isinstance(ckpt, dict) and "net" in ckpt:  # cifar10dvs/train.py
    state, rest = ckpt["net"], {k: v for k, v in ckpt.items() if k != "net"}
  elif isinstance(ckpt, dict) and all(isinstance(v, np.ndarray) for v in ckpt.values()):
    state, rest = ckpt, {}
  else:
    found = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
    raise AuthorsCheckpointError(
      f"{path}: expected a state dict, {{'state_dict': ...}} or {{'net': ...}}, got {found}"
    )
  if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
    raise AuthorsCheckpointError(f"{path}: the state dict must map names to tensors")
  return state, rest


def _rules_for(model: nnx.Module) -> tuple[_Rule, ...]:
  kind = model.block_cls if isinstance(model, resnet.SpikingResNet) else type(model)
  for cls, rules in _RULES:
    if issubclass(kind, cls):
      return rules
  supported = ", ".join(cls.__name__ for cls, _ in _RULES)
  raise AuthorsCheckpointError(
    f"no mapping of the authors' checkpoints onto a {type(model).__name__}; supported: {supported}"
  )


def _our_module_path(rules: tuple[_Rule, ...], module_key: str) -> str | None:
  for pattern, template, *shifts in rules:
    match = re.fullmatch(pattern, module_key)
    if match:
      shift = shifts[0] if shifts else (0,) * len(match.groups())
      return template.format(*(int(g) + d for g, d in zip(match.groups(), shift)))
  return None


def _plan(
  model: nnx.Module, state: dict[str, np.ndarray]
) -> tuple[list[tuple[nnx.Variable, np.ndarray]], list[str]]:
  """Checks and converts every tensor: ``(variable, value)`` pairs and the errors found."""
  rules = _rules_for(model)
  writes, errors = [], []
  norms: dict[str, snn.TdBatchNorm] = {}  # their BN's path -> ours
  thresholds: dict[str, np.ndarray] = {}  # their tdBN's path -> its Vth
  for key, tensor in state.items():
    module_key, _, name = key.rpartition(".")
    path = _our_module_path(rules, module_key)
    if path is None:
      errors.append(f"{key}: no {type(model).__name__} layer corresponds to it")
      continue
    try:
      module = _walk(model, path)
    except (AttributeError, IndexError, TypeError):
      errors.append(f"{key}: maps to {path}, which {type(model).__name__} does not have")
      continue
    params = _module_params(module)
    if name not in params:
      errors.append(f"{key}: {path} is a {type(module).__name__}, which has no {name!r}")
      continue
    if isinstance(module, snn.TdBatchNorm):
      norms[module_key] = module
      if name == "Vth":
        thresholds[module_key] = tensor
    target = params[name]
    if target is None:
      continue
    variable_path, perm = target
    variable = _walk(module, variable_path)
    expected = tuple(variable[...].shape)
    value = _to_ours(tensor, perm)
    if value.shape != expected:
      errors.append(
        f"{key}: expected shape {_theirs(expected, perm)} (for {path}.{variable_path} "
        f"{expected}), got {tuple(tensor.shape)}"
      )
      continue
    writes.append((variable, value))
  errors += [_norm_factor_error(k, norm, thresholds.get(k)) for k, norm in norms.items()]
  return writes, [e for e in errors if e]


def load_authors_checkpoint(
  model: nnx.Module, path: str | os.PathLike[str], *, allow_nonfinite: bool = False
) -> dict[str, Any]:
  """Loads a checkpoint of the GLIF authors' PyTorch code into a zoo model, in place.

  The model must be the network the checkpoint was trained as, built by
  `glif_jax.models.create` with the same classes, T and neuron (e.g. ``"resnet19"`` with
  ``num_classes=10, timesteps=4`` for ``resCifar19-CIFAR10-step4-CW.pth.tar``). Nothing
  in the file is executed (see `glif_jax.models._torch_zip`).

  Args:
    model: the zoo model to write into.
    path: a ``.pth``/``.pth.tar`` file holding ``{'state_dict': ...}`` (with or without
      DDP's ``module.`` prefix), the CIFAR10-DVS script's ``{'net': ..., 'optimizer': ...}``,
      or a bare state dict.
    allow_nonfinite: load NaN/inf values and negative running variances too.

  Returns:
    The checkpoint's other entries (e.g. ``epoch``, ``max_test_acc``, optimizer state),
    with tensors as NumPy arrays.

  Raises:
    AuthorsCheckpointError: as `load_authors_state_dict`; the model is left unchanged.
    NonFiniteWeightsError: as `load_authors_state_dict`; the model is left unchanged.
    TorchCheckpointError: the file is not a safe, readable PyTorch zip checkpoint (all
      three errors are ValueErrors).
  """
  path = os.fspath(path)
  state, rest = _state_dict(load_torch_zip(path), path)
  load_authors_state_dict(model, state, name=path, allow_nonfinite=allow_nonfinite)
  return rest


def load_authors_state_dict(
  model: nnx.Module,
  state_dict: dict[str, np.ndarray],
  *,
  name: str = "the state dict",
  allow_nonfinite: bool = False,
) -> None:
  """Writes the authors' state dict (their key names, NumPy arrays) into a zoo model.

  Args:
    model: the zoo model to write into, in place.
    state_dict: ``{their key: array}``, e.g. ``net.state_dict()`` of their PyTorch model
      as NumPy; DDP's ``module.`` prefix is removed.
    name: what to call the source in error messages.
    allow_nonfinite: load NaN/inf values and negative running variances too.

  Raises:
    NonFiniteWeightsError: a tensor holds NaN/inf or a negative running variance (up to
      five keys named) and ``allow_nonfinite`` is False. The model is then left unchanged.
    AuthorsCheckpointError: a key the model has no place for, a model parameter the
      state dict lacks, or a shape that does not fit (naming the key, the expected and
      the given shape), or BN scaling that differs (tdBN against plain BN). The model is
      then left unchanged.
  """
  if state_dict and all(k.startswith("module.") for k in state_dict):
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
  if not allow_nonfinite:
    _check_finite(state_dict, name)
  writes, errors = _plan(model, state_dict)
  written = {id(v) for v, _ in writes}
  for var_path, variable in nnx.iter_graph(model):
    if isinstance(variable, (nnx.Param, nnx.BatchStat)) and id(variable) not in written:
      key = ".".join(map(str, var_path))
      errors.append(f"{key} {tuple(variable[...].shape)}: not in the checkpoint")
  if errors:
    shown = "\n  ".join(errors[:20])
    more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
    raise AuthorsCheckpointError(
      f"{name} does not fit the {type(model).__name__}:\n  {shown}{more}"
    )
  for variable, value in writes:
    variable.set_value(jnp.asarray(value, dtype=variable[...].dtype))
