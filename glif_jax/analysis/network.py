r"""Network statistics of a spiking model on a batch: firing rates, SOPs, energy, gates.

Energy follows the common convention (DESIGN.md §7): an accumulate costs
``E_AC = 0.9 pJ``, a multiply-accumulate ``E_MAC = 4.6 pJ`` (45 nm). Per sample:

- MACs of a synaptic layer (`nnx.Conv`, `nnx.Linear`) are counted from the shapes of one
  forward pass: ``MACs per item = prod(output.shape[1:]) · kernel.size / out_features``
  (``H'·W'·C_out · k_h·k_w·C_in/groups`` for a convolution, ``F_out · F_in`` for a dense
  layer), times the items it ran on per sample (T when T is folded into the batch, 1 when
  a direct-encoded first layer runs once). BatchNorm (foldable into the weights), pooling,
  residual additions and the neurons themselves are not counted.
- The first synaptic layer called sees the real-valued input (direct encoding): its MACs
  cost ``E_MAC``. Every later layer is driven by spikes: its synaptic operations are
  ``SOPs = r · MACs`` with ``r`` the mean of its input (the firing rate of the neurons
  feeding it, after any pooling), i.e. firing rate × T × FLOPs of the layer, and cost
  ``E_AC`` each.
- The ANN of the same architecture runs every layer once with MACs:
  ``E_ANN = E_MAC · Σ MACs per item``.

Example:
  >>> from flax import nnx
  >>> import jax.numpy as jnp
  >>> from glif_jax import models
  >>> from glif_jax.analysis import network
  >>> model = models.create("mlp", num_classes=10, timesteps=2, in_channels=1, width=8,
  ...                       rngs=nnx.Rngs(0))
  >>> stats = network.network_statistics(model, jnp.ones((3, 28, 28, 1)))
  >>> stats.ann_macs  # 784·8 + 8·10
  6352
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from glif_jax import nn as snn
from glif_jax.analysis.dynamics import GATE_NAMES

E_MAC_PJ = 4.6
E_AC_PJ = 0.9
_SYNAPSE = "analysis_synapse"
_SPIKES = "analysis_spikes_per_sample"


class SynapticLayer(NamedTuple):
  """Operation counts of one synaptic layer, per sample.

  Attributes:
    name: the layer's module path (``"/"``-joined).
    kind: ``"Conv"`` or ``"Linear"``.
    macs: MACs as run (T per-step passes for a time-folded layer, one for direct encoding).
    ann_macs: MACs of one pass, the same layer in an ANN.
    input_rate: mean of the layer's input (the firing rate feeding it).
    encoding: whether it is the first layer (real-valued input, costed as MACs).
    sops: synaptic operations, ``input_rate · macs`` (0 for the encoding layer).
  """

  name: str
  kind: str
  macs: int
  ann_macs: int
  input_rate: float
  encoding: bool
  sops: float


class NetworkStats(NamedTuple):
  """Statistics of a model on a batch (counts and energies per sample).

  Attributes:
    firing_rates: ``{neuron layer path: per-channel firing rate [C]}``, network order.
    spike_counts: total spikes of all neuron layers per sample ``[B]``.
    synapses: the `SynapticLayer`\\ s in call order.
    sops: synaptic operations.
    encoding_macs: MACs of the encoding layer.
    ann_macs: MACs of the same architecture as an ANN.
    snn_energy_pj: ``E_MAC · encoding_macs + E_AC · sops``.
    ann_energy_pj: ``E_MAC · ann_macs``.
  """

  firing_rates: dict[str, np.ndarray]
  spike_counts: np.ndarray
  synapses: list[SynapticLayer]
  sops: float
  encoding_macs: int
  ann_macs: int
  snn_energy_pj: float
  ann_energy_pj: float

  @property
  def layer_rates(self) -> dict[str, float]:
    """Mean firing rate of each neuron layer (mean over its channels)."""
    return {k: float(np.mean(v)) for k, v in self.firing_rates.items()}

  @property
  def energy_ratio(self) -> float:
    """ANN energy / SNN energy (> 1: the SNN is cheaper)."""
    return self.ann_energy_pj / self.snn_energy_pj if self.snn_energy_pj else math.inf


@contextlib.contextmanager
def _recording() -> Iterator[None]:
  """Temporarily makes synaptic layers and neurons sow what the statistics need.

  As `nnx.capture(..., method_outputs=...)` does, this wraps class methods for the
  duration and restores them after.
  """
  order = itertools.count()
  originals = {cls: cls.__call__ for cls in (nnx.Conv, nnx.Linear, snn.SpikingNeuron)}

  def synapse(cls):
    def call(self, x, *args, **kwargs):
      y = originals[cls](self, x, *args, **kwargs)
      per_item = math.prod(y.shape[1:]) * self.kernel[...].size // self.out_features
      self.sow(
        nnx.Intermediate,
        _SYNAPSE,
        {
          "order": jnp.int32(next(order)),
          "items": jnp.int32(x.shape[0]),
          "macs_per_item": jnp.int32(per_item),
          "input_mean": jnp.mean(x, dtype=jnp.float32),
        },
      )
      return y

    return call

  def neuron(self, x, *args, **kwargs):
    spikes, state = originals[snn.SpikingNeuron](self, x, *args, **kwargs)
    axes = (0, *range(2, spikes.ndim))
    self.sow(
      nnx.Intermediate,
      _SPIKES,
      {"order": jnp.int32(next(order)), "counts": jnp.sum(spikes, axis=axes, dtype=jnp.float32)},
    )
    return spikes, state

  try:
    nnx.Conv.__call__, nnx.Linear.__call__ = synapse(nnx.Conv), synapse(nnx.Linear)
    snn.SpikingNeuron.__call__ = neuron
    yield
  finally:
    for cls, call in originals.items():
      cls.__call__ = call


def _by_name(intermediates: nnx.State, name: str) -> dict[str, tuple[Any, ...]]:
  """``{module path: sown values}`` of one sown name."""
  out = {}
  for path, value in jax.tree_util.tree_flatten_with_path(
    nnx.to_pure_dict(intermediates), is_leaf=lambda v: isinstance(v, tuple)
  )[0]:
    keys = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
    if keys[-1] == name:
      out["/".join(keys[:-1])] = value
  return out


def _first_calls(records: Mapping[str, tuple[dict, ...]]) -> dict[str, int]:
  """The call index of each module's first call."""
  return {k: min(int(r["order"]) for r in rs) for k, rs in records.items()}


def _synapses(
  records: Mapping[str, tuple[dict, ...]], kinds: Mapping[str, str], batch: int
) -> list[SynapticLayer]:
  calls = sorted((int(r["order"]), name, r) for name, rs in records.items() for r in rs)
  layers = []
  for order, name, r in calls:
    per_item, items = int(r["macs_per_item"]), int(r["items"])
    macs = per_item * items // batch
    rate = float(r["input_mean"])
    encoding = order == calls[0][0]
    layers.append(
      SynapticLayer(
        name, kinds[name], macs, per_item, rate, encoding, 0.0 if encoding else rate * macs
      )
    )
  return layers


def network_statistics(
  model: nnx.Module,
  x: jax.Array,
  *,
  e_mac_pj: float = E_MAC_PJ,
  e_ac_pj: float = E_AC_PJ,
) -> NetworkStats:
  """Firing rates, spike counts, SOPs and the energy estimate of ``model`` on a batch.

  Runs one forward pass (`nnx.jit`, under `nnx.capture`) with the synaptic layers and
  neurons recording their shapes, input means and spikes; the model is left unchanged.
  Put it in eval mode first (``model.eval()``) to use tdBN's running statistics.

  Args:
    model: a network of `nnx.Conv`/`nnx.Linear` layers and `glif_jax.nn` neurons whose
      activations are time-major ``[T, B, ...]`` (every `glif_jax.models` model).
    x: a batch of the model's input.
    e_mac_pj, e_ac_pj: energy per MAC and per accumulate, in pJ.

  Returns:
    `NetworkStats`, counts and energies per sample.
  """
  with _recording():
    forward = nnx.jit(nnx.capture(lambda m, x: m(x), nnx.Intermediate))
    _, intermediates = forward(model, x)
  intermediates = jax.device_get(intermediates)
  spikes = _by_name(intermediates, _SPIKES)
  if not spikes:
    raise ValueError("the model ran no glif_jax.nn neuron module")
  spike_counts = sum(r["counts"] for rs in spikes.values() for r in rs)
  kinds = {"/".join(map(str, p)): type(m).__name__ for p, m in nnx.iter_modules(model)}
  synapses = _synapses(_by_name(intermediates, _SYNAPSE), kinds, batch=len(spike_counts))
  rates = _by_name(intermediates, "firing_rate")
  first_call = _first_calls(spikes)
  sops = sum(s.sops for s in synapses)
  encoding_macs = sum(s.macs for s in synapses if s.encoding)
  ann_macs = sum(s.ann_macs for s in synapses)
  return NetworkStats(
    firing_rates={k: np.asarray(rates[k]) for k in sorted(rates, key=first_call.get)},
    spike_counts=spike_counts,
    synapses=synapses,
    sops=sops,
    encoding_macs=encoding_macs,
    ann_macs=ann_macs,
    snn_energy_pj=e_mac_pj * encoding_macs + e_ac_pj * sops,
    ann_energy_pj=e_mac_pj * ann_macs,
  )


def _sigmoid(a: Any) -> np.ndarray:
  return 1 / (1 + np.exp(-np.asarray(a, np.float64)))


def glif_gates(model: nnx.Module) -> dict[str, dict[str, np.ndarray]]:
  """``{GLIF layer path: {"alpha", "beta", "gamma": σ(raw) per channel}}`` of a model.

  GLIF_f layers (fixed gates) are left out. The values are the soft gates; under hard
  gating the neuron uses ``1[value > 0.5]``.
  """
  return {
    "/".join(map(str, path)): {g: _sigmoid(getattr(m, g)[...]) for g in GATE_NAMES}
    for path, m in nnx.iter_modules(model)
    if isinstance(m, snn.GLIF) and not m.simplified
  }


def _raw_gates(params: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, dict]:
  """GLIF gate values found in a restored parameter tree, by their parameter names."""
  if all(g in params for g in (*GATE_NAMES, "conduct")):
    return {"/".join(prefix): {g: _sigmoid(params[g]) for g in GATE_NAMES}}
  found = {}
  for key, value in params.items():
    if isinstance(value, Mapping):
      found.update(_raw_gates(value, (*prefix, str(key))))
  return found


def _unwrap_values(tree: Any) -> Any:
  """A restored raw tree with each variable's ``{"value": array}`` replaced by the array."""
  if isinstance(tree, Mapping):
    if set(tree) == {"value"}:
      return tree["value"]
    return {k: _unwrap_values(v) for k, v in tree.items()}
  return tree


def _restore_raw(manager: Any, step: int, item: str) -> dict[str, Any]:
  import orbax.checkpoint as ocp  # a training dependency, needed only here

  args = ocp.args.Composite(**{item: ocp.args.StandardRestore()})
  return _unwrap_values(manager.restore(step, args=args)[item])


def _manager(checkpoint_dir: str | Path):
  import orbax.checkpoint as ocp

  directory = Path(checkpoint_dir).absolute()
  if not directory.is_dir():
    raise FileNotFoundError(f"no checkpoint directory {str(directory)!r}")
  return ocp.CheckpointManager(directory)


def restore_model(
  model: nnx.Module,
  checkpoint_dir: str | Path,
  *,
  step: int | None = None,
  item: str = "state",
  keys: tuple[str, str] = ("params", "rest"),
) -> int:
  """Loads a checkpoint's parameters and other state into ``model`` (in place).

  The checkpoint's ``item`` must hold the model's `nnx.Param` state under ``keys[0]`` and
  its other state (tdBN statistics) under ``keys[1]``, as `train.main` saves its
  `TrainState`; the optimiser state is not read.

  Args:
    model: a model of the checkpoint's architecture.
    checkpoint_dir: an orbax `CheckpointManager` directory.
    step: the step to restore (default: the latest).
    item: the checkpoint item holding the train state.
    keys: where the params and the other state lie in it.

  Returns:
    The restored step.
  """
  with _manager(checkpoint_dir) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoints in {str(checkpoint_dir)!r}")
    raw = _restore_raw(manager, step, item)
  for key, selector in zip(keys, (nnx.Param, nnx.Not(nnx.Param))):
    state = nnx.state(model, selector)
    nnx.replace_by_pure_dict(state, nnx.restore_int_paths(raw[key]))
    nnx.update(model, state)
  return step


def gate_evolution(
  checkpoint_dir: str | Path, *, item: str = "state", params_key: str = "params"
) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
  """GLIF gate values in every checkpoint an orbax `CheckpointManager` kept.

  Reads each step's ``item`` (a saved pytree, restored without a target) and finds the
  GLIF layers in its ``params_key`` subtree by their parameter names.

  Args:
    checkpoint_dir: the manager's directory (``<workdir>/checkpoints`` for `train.main`).
    item: the checkpoint item holding the train state.
    params_key: the key of the parameters inside it.

  Returns:
    ``(steps [S], {layer: {gate: values [S, C]}})``.
  """
  with _manager(checkpoint_dir) as manager:
    steps = sorted(manager.all_steps())
    if not steps:
      raise FileNotFoundError(f"no checkpoints in {str(checkpoint_dir)!r}")
    per_step = [_raw_gates(_restore_raw(manager, s, item)[params_key]) for s in steps]
  gates = {
    layer: {g: np.stack([p[layer][g] for p in per_step]) for g in GATE_NAMES}
    for layer in per_step[0]
  }
  return np.asarray(steps), gates


def neuron_spikes(model: nnx.Module, x: jax.Array) -> dict[str, jax.Array]:
  """``{neuron layer path: spikes [T, B, ...]}`` of one (eager) forward pass, network order."""
  with _recording():
    forward = nnx.capture(lambda m, x: m(x), nnx.Intermediate, method_outputs=nnx.Intermediate)
    _, intermediates = forward(model, x)
  runs = _by_name(intermediates, "run")
  first_call = _first_calls(_by_name(intermediates, _SPIKES))
  return {k: runs[k][-1][0] for k in sorted(runs, key=first_call.get)}
