"""The library's figures: neuron dynamics from the equations, and a trained network's statistics.

Each function simulates (or reads) what it plots and builds every label from the values
it plotted, so a figure cannot disagree with its caption. Needs matplotlib (see `plots`).

Example:
  >>> from glif_jax.analysis import figures
  >>> paths = figures.dynamics_figures("docs")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from matplotlib.figure import Figure

from glif_jax import neurons
from glif_jax.analysis import dynamics, network, plots
from glif_jax.neurons.glif import FIXED_GATES

# (α, β, γ) of the GLIF curves: the two pure neuron types and the authors' fixed gates.
GLIF_TYPES = ((1.0, 0.0, 1.0), FIXED_GATES, (0.0, 0.0, 0.0))


def _value(raw: jax.Array) -> float:
  """The value of a layer-wise logit (first grid point)."""
  return float(jax.nn.sigmoid(jnp.ravel(raw)[0]))


def glif_type(alpha: float, gamma: float) -> str:
  """The neuron type a pair of pure gates selects, e.g. ``"exp. decay, hard reset"``."""
  decay = {1.0: "exp. decay", 0.0: "linear leak"}.get(alpha, f"α={alpha:g}")
  reset = {1.0: "hard reset", 0.0: "soft reset"}.get(gamma, f"γ={gamma:g}")
  return f"{decay}, {reset}"


def _glif_label(alpha: float, beta: float, gamma: float) -> str:
  label = f"GLIF α={alpha:g}, β={beta:g}, γ={gamma:g}"
  pure = {alpha, gamma} <= {0.0, 1.0}
  return f"{label}: {glif_type(alpha, gamma)}" if pure else label


def fi_curves(
  *,
  currents: Sequence[float] = tuple(np.linspace(0.0, 3.0, 61)),
  lif_taus: Sequence[float] = (2.0, 4.0),
  lif_v_th: float = 1.0,
  klif_ks: Sequence[float] = (0.5, 2.0),
  klif_tau: float = 2.0,
  glif_gates: Sequence[tuple[float, float, float]] = GLIF_TYPES,
  timesteps: int = 200,
  path: str | Path | None = None,
) -> Figure:
  """f–I curves of LIF (with the closed form), KLIF and GLIF for the given parameters."""
  inputs = jnp.asarray(currents, jnp.float32)
  lif = dynamics.fi_curve(
    neurons.plif, dynamics.plif_logits(lif_taus), inputs, timesteps=timesteps, v_th=lif_v_th
  )
  theory = [
    [
      dynamics.lif_closed_form_rate(float(c), tau=t, v_th=lif_v_th, timesteps=timesteps)
      for c in inputs
    ]
    for t in lif_taus
  ]
  klif_p = neurons.KLIFParams(jnp.asarray(klif_ks, jnp.float32))
  klif = dynamics.fi_curve(
    neurons.klif, klif_p, inputs, timesteps=timesteps, tau=klif_tau, v_th=lif_v_th
  )
  alpha, beta, gamma = (jnp.asarray(g) for g in zip(*glif_gates))
  glif_p = dynamics.glif_logits(alpha=alpha, beta=beta, gamma=gamma, timesteps=timesteps)
  glif = dynamics.fi_curve(neurons.glif, glif_p, inputs, timesteps=timesteps)
  labels = [
    *(f"LIF τ={t:g}, V_th={lif_v_th:g}" for t in lif_taus),
    *(f"KLIF k={k:g} (τ={klif_tau:g}, V_th={lif_v_th:g})" for k in klif_ks),
    *(_glif_label(*gates) for gates in glif_gates),
  ]
  title = (
    f"f–I curves (T = {timesteps}; GLIF: τ={_value(glif_p.tau):g}, V_th={_value(glif_p.v_th):g})"
  )
  rates = jnp.concatenate([lif, klif, glif])
  return plots.fi_curves(inputs, rates, labels=labels, theory=theory, title=title, path=path)


def gate_sweep(
  *,
  alpha: Sequence[float] = tuple(np.linspace(0, 1, 21)),
  beta: Sequence[float] = (0.0, 0.5, 1.0),
  gamma: Sequence[float] = tuple(np.linspace(0, 1, 21)),
  current: float = 0.5,
  conduct: tuple[float, float] = (0.1, 0.9),
  timesteps: int = 40,
  path: str | Path | None = None,
) -> Figure:
  """Spike counts of GLIF over an (α, β, γ) grid, constant input, conductance ramp."""
  ramp = jnp.linspace(*conduct, timesteps)
  x = jnp.full((timesteps,), current)
  sweep = dynamics.gate_sweep(alpha, beta, gamma, x, conduct=ramp)
  title = (
    f"GLIF gate sweep: spikes in {timesteps} steps of X = {current:g} "
    f"(conductance G_t rising {conduct[0]:g} → {conduct[1]:g})"
  )
  return plots.gate_sweep_heatmaps(sweep, alpha, beta, gamma, title=title, path=path)


def glif_types(
  *,
  gates: Sequence[tuple[float, float]] = ((1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0)),
  beta: float = 0.0,
  current: float = 0.42,
  onset: int = 2,
  timesteps: int = 24,
  path: str | Path | None = None,
) -> Figure:
  """Membrane traces of GLIF for ``(α, γ)`` pairs: the gates select the neuron type."""
  alpha, gamma = (jnp.asarray(g) for g in zip(*gates))
  p = dynamics.glif_logits(alpha=alpha, beta=beta, gamma=gamma, timesteps=timesteps)
  spikes, trace = dynamics.simulate(
    neurons.glif, p, dynamics.step_current(current, timesteps, onset=onset)
  )
  return plots.membrane_trace(
    trace.u[..., 0].T,
    threshold=_value(p.v_th),
    spikes=spikes[..., 0].T,
    labels=[f"α={a:g}, γ={g:g}: {glif_type(a, g)}" for a, g in gates],
    title=f"GLIF gates select the neuron type (β = {beta:g}, step input X = {current:g} "
    f"from t = {onset})",
    path=path,
  )


def dynamics_figures(out: str | Path) -> list[Path]:
  """`fi_curves`, `gate_sweep` and `glif_types` with their defaults, as PNGs in ``out``."""
  paths = [Path(out) / f"{name}.png" for name in ("fi_curve", "gate_sweep", "glif_types")]
  for make, path in zip((fi_curves, gate_sweep, glif_types), paths):
    make(path=path)
  return paths


def _ranked_sample(counts: np.ndarray, k: int) -> np.ndarray:
  """Indices of ``k`` entries of ``counts`` with a non-zero count, evenly spaced in their
  ranking by count, from the largest to the smallest (ties: lower index first; all of
  them if fewer than ``k`` are non-zero)."""
  ranked = np.argsort(-counts, kind="stable")[: np.count_nonzero(counts)]
  picks = np.linspace(0, len(ranked) - 1, min(k, len(ranked))).round().astype(int)
  return ranked[picks]


def firing_sample(spikes: Any, k: int) -> np.ndarray:
  """Spikes ``[T, k]`` of ``k`` neurons of ``spikes [T, N]`` that fire, evenly spaced in
  their ranking by spike count: from the most active to the least active one that fires
  (ties: lower index first; all of them if fewer than ``k`` fire)."""
  spikes = np.asarray(spikes)
  return spikes[:, _ranked_sample(spikes.sum(axis=0), k)]


def _first_example(x: jax.Array) -> jax.Array:
  """The first example of a batch, kept as a batch of one (time-major ``[T, B, ...]`` if
  ``x`` is 5-D: event frames)."""
  return x[:, :1] if x.ndim == 5 else x[:1]


def input_image(x: Any) -> np.ndarray:
  """The first example of a model's input batch as one image ``[H, W, C]``: ``x [B, H, W,
  C]`` as it is, time-major ``x [T, B, H, W, C]`` (event frames) summed over time."""
  x = np.asarray(x)
  if x.ndim == 4:
    return x[0]
  if x.ndim == 5:
    return x[:, 0].sum(axis=0)
  raise ValueError(f"x must be [B, H, W, C] or [T, B, H, W, C], got shape {x.shape}")


def spike_map_layers(
  model: nnx.Module, x: jax.Array, channels: int = 4
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """``{layer: (spikes [T, K, H, W], channel indices [K])}`` of every convolutional neuron
  layer (spikes ``[T, B, H, W, C]``) on the first example of ``x``: ``K = channels`` of
  its channels that fire, evenly spaced by spike count (`firing_sample`'s choice)."""
  maps = {}
  for name, spikes in network.neuron_spikes(model, _first_example(x)).items():
    if spikes.ndim != 5:
      continue
    first = np.moveaxis(np.asarray(spikes)[:, 0], -1, 1)  # [T, C, H, W]
    chosen = _ranked_sample(first.sum(axis=(0, 2, 3)), channels)
    maps[name] = (first[:, chosen], chosen)
  return maps


def raster_panels(model: nnx.Module, x: jax.Array, k: int) -> dict[str, np.ndarray]:
  """``{panel title: spikes [T, k]}`` of each neuron layer whose spikes are not images
  (``[T, B, F]``; see `spike_map_layers` for the others) on the first example of ``x``,
  network order: `firing_sample` of its neurons; each title names the layer and the choice."""
  panels = {}
  for name, spikes in network.neuron_spikes(model, _first_example(x)).items():
    if spikes.ndim == 5:
      continue
    flat = np.asarray(spikes)[:, 0].reshape(spikes.shape[0], -1)
    chosen = firing_sample(flat, k)
    firing = np.count_nonzero(flat.sum(axis=0))
    panels[f"`{name}`: {chosen.shape[1]} of {firing:,} firing (of {flat.shape[1]:,})"] = chosen
  return panels


def gate_notes(movement: Mapping[str, Mapping[str, network.GateMovement]]) -> dict[str, str]:
  """``{gate: one line per layer: "layer: mean |Δ| 0.004, largest 0.013"}`` of a
  `network.gate_movement`, for the panels of the gate figures."""
  return {
    gate: "\n".join(
      f"{layer}: mean |Δ| {m[gate].mean_abs:.3f}, largest {m[gate].max_abs:.3f}"
      for layer, m in movement.items()
    )
    for gate in neurons.GATE_NAMES
  }


def _history_movement(
  gate_history: tuple[Any, Mapping[str, Mapping[str, Any]]],
) -> dict[str, dict[str, network.GateMovement]]:
  """The movement of the gates from the first to the last step of a gate history."""
  _, gates = gate_history
  first = {
    layer: {g: np.asarray(v)[0] for g, v in values.items()} for layer, values in gates.items()
  }
  last = {
    layer: {g: np.asarray(v)[-1] for g, v in values.items()} for layer, values in gates.items()
  }
  return network.gate_movement(first, last)


def _gate_figures(
  model: nnx.Module,
  out: Path,
  initial_gates: Mapping[str, Mapping[str, Any]] | None,
  gate_history: tuple[Any, Mapping[str, Mapping[str, Any]]] | None,
) -> list[Path]:
  """The GLIF gates' histograms (and their evolution), each panel saying how far its
  gate moved: from ``initial_gates`` per channel, along ``gate_history`` from its first
  step."""
  gates = network.glif_gates(model)
  if not gates:
    return []
  notes, title = None, "GLIF gates after training"
  if initial_gates is not None:
    notes = gate_notes(network.gate_movement(initial_gates, gates))
    title += " (dashed: at initialisation); |Δ| per channel from initialisation"
  histograms = plots.gate_histograms(gates, initial=initial_gates, notes=notes, title=title)
  paths = [plots.save_figure(histograms, out / "gates.png")]
  if gate_history is not None:
    steps = np.asarray(gate_history[0])
    figure = plots.gate_evolution(
      *gate_history,
      notes=gate_notes(_history_movement(gate_history)),
      title=f"GLIF gates during training; |Δ| of the plotted values from step {steps[0]} to {steps[-1]}",
    )
    paths.append(plots.save_figure(figure, out / "gate_evolution.png"))
  return paths


def network_figures(
  model: nnx.Module,
  stats: network.NetworkStats,
  x: jax.Array,
  out: str | Path,
  *,
  initial_gates: Mapping[str, Mapping[str, Any]] | None = None,
  gate_history: tuple[Any, Mapping[str, Mapping[str, Any]]] | None = None,
  raster_neurons: int = 64,
  map_channels: int = 4,
) -> list[Path]:
  """A model's figures as PNGs in ``out``: firing rates, spike maps of the convolutional
  neuron layers, rasters of the others, GLIF gates.

  Args:
    model: the network (its GLIF layers' gates are plotted).
    stats: its `network.network_statistics` on a batch.
    x: that batch; the spike maps and rasters show its first example
      (`spike_map_layers`, `raster_panels`).
    out: the output folder.
    initial_gates: the GLIF gates at initialisation (`network.glif_gates` of the model
      before training); the gate histograms then show them and how far each gate moved.
    gate_history: ``(steps [S], {layer: {gate: values [S, C]}})`` of the gates during
      training (e.g. `network.gate_evolution` of the kept checkpoints, or the logged
      per-step means with C = 1); with GLIF layers it is plotted too.
    raster_neurons: how many neurons each raster shows.
    map_channels: how many channels of each convolutional layer the spike maps show.

  Returns:
    The paths written.
  """
  out = Path(out)
  paths = [plots.save_figure(plots.firing_rate_bars(stats.layer_rates), out / "firing_rates.png")]
  maps = spike_map_layers(model, x, map_channels)
  if maps:
    title = f"Spike maps on one example\n({map_channels} channels a layer, most active first)"
    figure = plots.spike_maps(input_image(x), maps, title=title)
    paths.append(plots.save_figure(figure, out / "spike_maps.png"))
  panels = raster_panels(model, x, raster_neurons)
  if panels:
    title = "Spikes on one example: neurons that fire, evenly spaced by spike count (most at 0)"
    paths.append(plots.save_figure(plots.spike_rasters(panels, title=title), out / "raster.png"))
  return paths + _gate_figures(model, out, initial_gates, gate_history)
