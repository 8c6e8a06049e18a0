r"""Network statistics of a spiking model on a batch: firing rates, SOPs, energy, gates.

Energy follows the common convention (docs/explanation/analysis.md): an accumulate costs
``E_AC = 0.9 pJ``, a multiply-accumulate ``E_MAC = 4.6 pJ`` (45 nm). Per sample:

- MACs of a synaptic layer (`nnx.Conv`, `nnx.Linear`) are counted from the shapes of one
  forward pass: ``MACs per item = prod(output.shape[1:]) · kernel.size / out_features``
  (``H'·W'·C_out · k_h·k_w·C_in/groups`` for a convolution, ``F_out · F_in`` for a dense
  layer), times the items it ran on per sample (T when T is folded into the batch, 1 when
  a direct-encoded first layer runs once). BatchNorm (foldable into the weights), pooling,
  residual additions and the neurons themselves are not counted.
- A layer whose input is binary (every value 0 or 1: spikes) performs synaptic
  operations, ``SOPs = r · MACs`` with ``r`` the mean of its input (the firing rate
  feeding it), i.e. firing rate × T × FLOPs of the layer, each costing ``E_AC``. A layer
  whose input is not binary — the first layer's analogue input (direct encoding), a
  membrane shortcut of the MS-ResNets, a classifier after average pooling — multiplies:
  its MACs cost ``E_MAC`` (`SynapticLayer.encoding`).
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

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from flax import nnx

from glif_jax import neurons
from glif_jax import nn as snn

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


class SynapticLayer(NamedTuple):
  """Operation counts of one synaptic layer, per sample.

  Attributes:
    name: the layer's module path (``"/"``-joined).
    kind: ``"Conv"`` or ``"Linear"``.
    macs: MACs as run (T per-step passes for a time-folded layer, one for direct encoding).
    ann_macs: MACs of one pass, the same layer in an ANN.
    input_rate: mean of the layer's input (the firing rate feeding it).
    encoding: whether its input is not binary spikes, so that it is costed as MACs
      (the encoding layer, membrane shortcuts, a classifier after average pooling).
    sops: synaptic operations, ``input_rate · macs`` (0 for a layer costed as MACs).
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
    encoding_macs: MACs of the layers whose input is not binary (costed as MACs).
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

  @property
  def energy_comparison(self) -> str:
    """The energy ratio in words, the larger energy over the smaller, e.g. ``"the SNN needs
    3.67× less energy than the ANN (ANN / SNN = 3.67)"``."""
    cheaper = self.energy_ratio >= 1
    factor = self.energy_ratio if cheaper else 1 / self.energy_ratio
    words, quotient = ("less", "ANN / SNN") if cheaper else ("more", "SNN / ANN")
    return f"the SNN needs {factor:.2f}× {words} energy than the ANN ({quotient} = {factor:.2f})"

  def markdown(self, e_mac_pj: float = E_MAC_PJ, e_ac_pj: float = E_AC_PJ) -> str:
    """Totals, then a table of the neuron layers and one of the synaptic layers (Markdown).

    ``e_mac_pj`` and ``e_ac_pj`` are only quoted: pass those the statistics used.
    """
    counts = self.spike_counts
    return "\n".join(
      [
        f"- spikes per sample: {counts.mean():.1f} (min {counts.min():.0f}, max {counts.max():.0f})",
        f"- synaptic operations (SOPs) per sample: {self.sops:.4g}",
        (
          f"- MACs per sample: {self.encoding_macs:.4g} in layers whose input is not binary "
          f"(the encoding layer among them); the ANN of the same architecture: "
          f"{self.ann_macs:.4g}"
        ),
        (
          f"- energy per sample (E_MAC = {e_mac_pj} pJ, E_AC = {e_ac_pj} pJ): SNN "
          f"{self.snn_energy_pj / 1e6:.4g} µJ, ANN {self.ann_energy_pj / 1e6:.4g} µJ: "
          f"{self.energy_comparison}"
        ),
        "",
        "| neuron layer | firing rate | min channel | max channel |",
        "|---|---|---|---|",
        *(
          f"| `{k}` | {v.mean():.4f} | {v.min():.4f} | {v.max():.4f} |"
          for k, v in self.firing_rates.items()
        ),
        "",
        "| synaptic layer | kind | input rate | MACs (as run) | ANN MACs | SOPs |",
        "|---|---|---|---|---|---|",
        *(
          f"| `{s.name}` | {s.kind}{' (input not binary: MACs)' if s.encoding else ''} | "
          f"{s.input_rate:.4f} | "
          f"{s.macs:,} | {s.ann_macs:,} | {s.sops:.4g} |"
          for s in self.synapses
        ),
      ]
    )


_SYNAPTIC = ("conv_general_dilated", "dot_general")
_INLINED = (
  "jit",
  "pjit",
  "closed_call",
  "core_call",
  "remat2",
  "checkpoint",
  "custom_jvp_call",
  "custom_vjp_call",
)
_KERNEL_VIEWS = ("convert_element_type", "reshape", "transpose", "copy")  # keep a kernel's name


class _Call(NamedTuple):
  """A synaptic primitive met while interpreting the forward pass."""

  module: str | None  # path of the module whose kernel it multiplies
  items: int  # output items (batch entries it ran on)
  macs_per_item: int
  input_mean: jax.Array
  input_binary: jax.Array  # whether every input value is 0 or 1 (spikes)


def _subjaxpr(eqn) -> jax.extend.core.ClosedJaxpr | None:
  """The jaxpr of a call-like equation whose body the interpreter steps into."""
  if eqn.primitive.name not in _INLINED:
    return None
  jaxpr = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
  if isinstance(jaxpr, jax.extend.core.Jaxpr):
    return jax.extend.core.ClosedJaxpr(jaxpr, ())
  return jaxpr


def _has_synapse(jaxpr: jax.extend.core.Jaxpr) -> bool:
  return any(
    eqn.primitive.name in _SYNAPTIC
    or any(_has_synapse(sub) for sub in jax.extend.core.jaxprs_in_params(eqn.params))
    for eqn in jaxpr.eqns
  )


def _macs(eqn, lhs: jax.Array, out: jax.Array) -> tuple[int, int]:
  """``(items, MACs per item)`` of a convolution or dense product: output size × fan-in."""
  if eqn.primitive.name == "conv_general_dilated":
    dims = eqn.params["dimension_numbers"]
    kernel = eqn.invars[1].aval.shape
    fan_in = math.prod(kernel) // kernel[dims.rhs_spec[0]]  # k_h·k_w·C_in/groups
    items = out.shape[dims.out_spec[0]]
  else:
    (contracting, _), _ = eqn.params["dimension_numbers"]
    fan_in = math.prod(lhs.shape[d] for d in contracting)
    items = math.prod(out.shape[:-1])
  return items, math.prod(out.shape) // items * fan_in


def _interpret(jaxpr, consts, args, names, calls: list[_Call]) -> list[Any]:
  """Evaluates ``jaxpr``, appending a `_Call` for each synaptic primitive, in call order.

  ``names`` labels the arguments that are module parameters (their module path); the
  label follows a kernel through casts and reshapes to the product that uses it.
  """
  env, label = {}, {}
  read = lambda v: v.val if isinstance(v, jax.extend.core.Literal) else env[v]
  env.update(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  label.update(zip(jaxpr.invars, names))
  for eqn in jaxpr.eqns:
    invals = [read(v) for v in eqn.invars]
    in_names = [
      None if isinstance(v, jax.extend.core.Literal) else label.get(v) for v in eqn.invars
    ]
    sub = _subjaxpr(eqn)
    if sub is not None:
      outvals = _interpret(sub.jaxpr, sub.consts, invals, in_names, calls)
    else:
      if any(_has_synapse(j) for j in jax.extend.core.jaxprs_in_params(eqn.params)):
        raise NotImplementedError(
          f"a convolution or dense layer inside a {eqn.primitive.name!r}: only jit, remat "
          "and custom_jvp/custom_vjp bodies are stepped into"
        )
      outvals = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
      outvals = outvals if eqn.primitive.multiple_results else [outvals]
      if eqn.primitive.name in _SYNAPTIC:
        lhs = invals[0]
        binary = jnp.all((lhs == 0) | (lhs == 1))
        mean = jnp.mean(lhs, dtype=jnp.float32)
        calls.append(_Call(in_names[1], *_macs(eqn, lhs, outvals[0]), mean, binary))
    env.update(zip(eqn.outvars, outvals))
    if eqn.primitive.name in _KERNEL_VIEWS and in_names and in_names[0]:
      label[eqn.outvars[0]] = in_names[0]
  return [read(v) for v in jaxpr.outvars]


def _record(model: nnx.Module, x: jax.Array):
  """One jitted forward pass of ``model`` on ``x``, interpreted.

  Returns ``(captured, calls, order)``: the pass's `nnx.capture` of `nnx.Intermediate`
  (the neurons' firing rates and, as method outputs, their spikes), the synaptic
  `_Call`\\ s in call order, and for each captured leaf the index of the top-level
  equation that produced it (the neurons' call order).
  """
  graphdef, state = nnx.split(model)
  paths, leaves = zip(*jax.tree_util.tree_flatten_with_path(state)[0])
  treedef = jax.tree.structure(state)
  names = [jax.tree_util.keystr(path[:-2], simple=True, separator="/") for path in paths]

  def forward(leaves, x):
    m = nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))
    capture = nnx.capture(lambda m, x: m(x), nnx.Intermediate, method_outputs=nnx.Intermediate)
    return capture(m, x)[1]

  closed, captured_shape = jax.make_jaxpr(forward, return_shape=True)(list(leaves), x)
  produced_by = {v: i for i, e in enumerate(closed.jaxpr.eqns) for v in e.outvars}
  order = [produced_by.get(v, -1) for v in closed.jaxpr.outvars]
  calls: list[_Call] = []

  @jax.jit
  def run(leaves, x):
    calls.clear()
    out = _interpret(closed.jaxpr, closed.consts, [*leaves, x], [*names, None], calls)
    return out, [(c.input_mean, c.input_binary) for c in calls]

  out, values = jax.device_get(run(list(leaves), x))
  calls = [c._replace(input_mean=m, input_binary=b) for c, (m, b) in zip(calls, values)]
  captured = jax.tree.unflatten(jax.tree.structure(captured_shape), out)
  return captured, calls, jax.tree.unflatten(jax.tree.structure(captured_shape), order)


def _by_name(intermediates: Any, name: str) -> dict[str, Any]:
  """``{module path: sown values}`` of one sown name."""
  out = {}
  pure = nnx.to_pure_dict(intermediates)
  for path, value in jax.tree_util.tree_flatten_with_path(
    pure, is_leaf=lambda v: isinstance(v, tuple)
  )[0]:
    if jax.tree_util.keystr(path[-1:], simple=True) == name:
      out[jax.tree_util.keystr(path[:-1], simple=True, separator="/")] = value
  return out


def _neuron_outputs(model: nnx.Module, x: jax.Array):
  """``(firing rates, spikes, call order)`` of the neuron layers, by module path."""
  captured, calls, order = _record(model, x)
  rates = _by_name(captured, "firing_rate")
  if not rates:
    raise ValueError("the model ran no glif_jax.nn neuron module")
  spikes = {k: v[-1][0] for k, v in _by_name(captured, "run").items()}
  first = {k: min(jax.tree.leaves(v)) for k, v in _by_name(order, "run").items()}
  return rates, spikes, sorted(spikes, key=first.__getitem__), calls


def _synapses(calls: list[_Call], kinds: Mapping[str, str], batch: int) -> list[SynapticLayer]:
  layers = []
  for i, call in enumerate(calls):
    name = call.module or f"{i}"
    macs = call.macs_per_item * call.items // batch
    rate = float(call.input_mean)
    dense = not bool(call.input_binary)
    layers.append(
      SynapticLayer(
        name,
        kinds.get(name, "?"),
        macs,
        call.macs_per_item,
        rate,
        dense,
        0.0 if dense else rate * macs,
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

  Runs one jitted forward pass under `nnx.capture` (the neurons' firing rates and
  spikes) and interprets its jaxpr, recording each convolution and dense product's
  shapes and input; nothing is patched and the model is left unchanged. Put it in eval
  mode first (``model.eval()``) to use tdBN's running statistics.

  Args:
    model: a network of `nnx.Conv`/`nnx.Linear` layers and `glif_jax.nn` neurons whose
      activations are time-major ``[T, B, ...]`` (every `glif_jax.models` model).
    x: a batch of the model's input.
    e_mac_pj, e_ac_pj: energy per MAC and per accumulate, in pJ.

  Returns:
    `NetworkStats`, counts and energies per sample.
  """
  rates, spikes, order, calls = _neuron_outputs(model, x)
  counts = [jnp.sum(s, axis=(0, *range(2, s.ndim)), dtype=jnp.float32) for s in spikes.values()]
  spike_counts = sum(counts[1:], counts[0])
  kinds = {"/".join(map(str, p)): type(m).__name__ for p, m in nnx.iter_modules(model)}
  synapses = _synapses(calls, kinds, batch=len(spike_counts))
  sops = sum(s.sops for s in synapses)
  dense_macs = sum(s.macs for s in synapses if s.encoding)
  return NetworkStats(
    firing_rates={k: np.asarray(rates[k]) for k in order},
    spike_counts=np.asarray(spike_counts),
    synapses=synapses,
    sops=sops,
    encoding_macs=dense_macs,
    ann_macs=sum(s.ann_macs for s in synapses),
    snn_energy_pj=e_mac_pj * dense_macs + e_ac_pj * sops,
    ann_energy_pj=e_mac_pj * sum(s.ann_macs for s in synapses),
  )


def _sigmoid(a: Any) -> np.ndarray:
  return 1 / (1 + np.exp(-np.asarray(a, np.float64)))


def glif_gates(model: nnx.Module) -> dict[str, dict[str, np.ndarray]]:
  """``{GLIF layer path: {"alpha", "beta", "gamma": σ(raw) per channel}}`` of a model.

  GLIF_f layers (fixed gates) are left out. The values are the soft gates; under hard
  gating the neuron uses ``1[value > 0.5]``.
  """
  return {
    "/".join(map(str, path)): _gate_values(m.params._asdict())
    for path, m in nnx.iter_modules(model)
    if isinstance(m, snn.GLIF) and not m.constants.simplified
  }


class GateMovement(NamedTuple):
  """How far one gate of one layer moved between two sets of its values (e.g. from its
  initial value to the trained one), over channels.

  Attributes:
    mean_abs: mean over channels of ``|after − before|``.
    max_abs: the largest ``|after − before|`` of a channel.
    before: mean value before.
    after: mean value after.
  """

  mean_abs: float
  max_abs: float
  before: float
  after: float


def gate_movement(
  before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, GateMovement]]:
  """``{layer: {gate: GateMovement}}`` from ``before`` to ``after``, both as `glif_gates`
  gives them (``{layer: {gate: values [C]}}``), for the layers in both.

  Raises:
    ValueError: a layer's gate has another number of channels in ``after``.
  """
  movement = {}
  for layer in after:
    if layer not in before:
      continue
    movement[layer] = {}
    for gate in neurons.GATE_NAMES:
      old, new = np.ravel(before[layer][gate]), np.ravel(after[layer][gate])
      if old.shape != new.shape:
        raise ValueError(
          f"{layer}/{gate}: {old.size} channels before and {new.size} after; expected the same"
        )
      delta = np.abs(new - old)
      movement[layer][gate] = GateMovement(
        float(delta.mean()), float(delta.max()), float(old.mean()), float(new.mean())
      )
  return movement


def _gate_values(logits: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """``{gate: σ(raw)}`` of a layer's gate logits (`glif_jax.neurons.GATE_NAMES`)."""
  return {g: _sigmoid(logits[g]) for g in neurons.GATE_NAMES}


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
    per_step = [neurons.glif_gate_logits(_restore_raw(manager, s, item)[params_key]) for s in steps]
  gates = {layer: [_gate_values(p[layer]) for p in per_step] for layer in per_step[0]}
  return np.asarray(steps), {
    layer: {g: np.stack([v[g] for v in values]) for g in neurons.GATE_NAMES}
    for layer, values in gates.items()
  }


def neuron_spikes(model: nnx.Module, x: jax.Array) -> dict[str, jax.Array]:
  """``{neuron layer path: spikes [T, B, ...]}`` of one forward pass, network order."""
  _, spikes, order, _ = _neuron_outputs(model, x)
  return {k: spikes[k] for k in order}
