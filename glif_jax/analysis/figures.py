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


def firing_sample(spikes: Any, k: int) -> np.ndarray:
  """Spikes ``[T, k]`` of ``k`` neurons of ``spikes [T, N]`` that fire, evenly spaced in
  their ranking by spike count: from the most active to the least active one that fires
  (ties: lower index first; all of them if fewer than ``k`` fire)."""
  spikes = np.asarray(spikes)
  counts = spikes.sum(axis=0)
  ranked = np.argsort(-counts, kind="stable")[: np.count_nonzero(counts)]
  picks = np.linspace(0, len(ranked) - 1, min(k, len(ranked))).round().astype(int)
  return spikes[:, ranked[picks]]


def raster_panels(model: nnx.Module, x: jax.Array, k: int) -> dict[str, np.ndarray]:
  """``{panel title: spikes [T, k]}`` of each neuron layer on the first example of ``x``,
  network order: `firing_sample` of its neurons; each title names the layer and the choice."""
  panels = {}
  for name, spikes in network.neuron_spikes(model, x[:1]).items():
    flat = np.asarray(spikes)[:, 0].reshape(spikes.shape[0], -1)
    chosen = firing_sample(flat, k)
    firing = np.count_nonzero(flat.sum(axis=0))
    panels[f"`{name}`: {chosen.shape[1]} of {firing:,} firing (of {flat.shape[1]:,})"] = chosen
  return panels


def network_figures(
  model: nnx.Module,
  stats: network.NetworkStats,
  x: jax.Array,
  out: str | Path,
  *,
  gate_history: tuple[Any, Mapping[str, Mapping[str, Any]]] | None = None,
  raster_neurons: int = 64,
) -> list[Path]:
  """A model's figures as PNGs in ``out``: firing rates, rasters, GLIF gates.

  Args:
    model: the network (its GLIF layers' gates are plotted).
    stats: its `network.network_statistics` on a batch.
    x: that batch; the rasters show a sample of each neuron layer's firing neurons on its
      first example (`raster_panels`).
    out: the output folder.
    gate_history: ``(steps [S], {layer: {gate: values [S, C]}})`` of the gates during
      training (e.g. `network.gate_evolution` of the kept checkpoints, or the logged
      per-step means with C = 1); with GLIF layers it is plotted too.
    raster_neurons: how many neurons each raster shows.

  Returns:
    The paths written.
  """
  out = Path(out)
  paths = [out / "firing_rates.png", out / "raster.png"]
  plots.firing_rate_bars(stats.layer_rates, path=paths[0])
  panels = raster_panels(model, x, raster_neurons)
  title = "Spikes on one example: neurons that fire, evenly spaced by spike count (most at 0)"
  plots.spike_rasters(panels, title=title, path=paths[1])
  gates = network.glif_gates(model)
  if gates:
    paths.append(plots.save_figure(plots.gate_histograms(gates), out / "gates.png"))
    if gate_history is not None:
      figure = plots.gate_evolution(*gate_history)
      paths.append(plots.save_figure(figure, out / "gate_evolution.png"))
  return paths
