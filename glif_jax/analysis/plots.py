"""Figures of neuron dynamics and network statistics (matplotlib, headless).

Every function builds a `matplotlib.figure.Figure` without pyplot (no global state, no
display needed), returns it, and saves it when given ``path`` (PNG, PDF, ... by suffix).
Arrays may be JAX or NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from glif_jax.analysis.dynamics import GateSweep
from glif_jax.neurons import GATE_NAMES

GATE_LABELS = {
  "alpha": "α (exp. vs linear decay)",
  "beta": "β (time-varying conductance)",
  "gamma": "γ (hard vs soft reset)",
}
_DPI = 150


def save_figure(fig: Figure, path: str | Path) -> Path:
  """Saves ``fig`` to ``path`` (format from the suffix), creating parent folders."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=_DPI, bbox_inches="tight")
  return path


def _finish(fig: Figure, path: str | Path | None) -> Figure:
  fig.set_layout_engine("constrained")
  if path is not None:
    save_figure(fig, path)
  return fig


def _raster(ax: Any, spikes: Any, title: str) -> None:
  """Draws ``spikes [T, N]`` on ``ax``: a dot at (t, n) for every spike of neuron n at step t."""
  spikes = np.asarray(spikes)
  if spikes.ndim != 2:
    raise ValueError(f"spikes must be [T, N], got shape {spikes.shape}")
  t, n = np.nonzero(spikes)
  ax.scatter(t, n, marker="|", s=60, color="black", linewidths=1.2)
  ax.set(
    xlim=(-0.5, spikes.shape[0] - 0.5),
    ylim=(-0.5, spikes.shape[1] - 0.5),
    xlabel="time step t",
    ylabel="neuron",
    title=title,
  )
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def spike_raster(
  spikes: Any, *, title: str = "Spike raster", path: str | Path | None = None
) -> Figure:
  """Raster of ``spikes [T, N]``: a dot at (t, n) for every spike of neuron n at step t."""
  fig = Figure(figsize=(6, 3.5))
  _raster(fig.add_subplot(), spikes, title)
  return _finish(fig, path)


def spike_rasters(
  panels: Mapping[str, Any],
  *,
  title: str = "Spike rasters",
  path: str | Path | None = None,
) -> Figure:
  """Rasters side by side, one per ``{panel title: spikes [T, N]}`` (e.g. one per layer)."""
  fig = Figure(figsize=(4 * len(panels) + 1, 4))
  axes = fig.subplots(1, len(panels), squeeze=False)[0]
  for ax, (name, spikes) in zip(axes, panels.items()):
    _raster(ax, spikes, name)
  fig.suptitle(title)
  return _finish(fig, path)


def membrane_trace(
  u: Any,
  *,
  threshold: float,
  spikes: Any | None = None,
  labels: Sequence[str] | None = None,
  title: str = "Membrane potential",
  path: str | Path | None = None,
) -> Figure:
  """Membrane potential ``u [T]`` or ``[T, N]`` over time with the threshold, spikes marked.

  Args:
    u: potentials, one line per column.
    threshold: V_th, drawn as a dashed line.
    spikes: optional spikes of ``u``'s shape, marked on the threshold line.
    labels: one legend label per column.
    title: the axes title.
    path: where to save the figure, if given.
  """
  u = np.asarray(u).reshape(len(u), -1)
  fig = Figure(figsize=(6.5, 3.5))
  ax = fig.add_subplot()
  t = np.arange(u.shape[0])
  for n in range(u.shape[1]):
    (line,) = ax.plot(t, u[:, n], marker=".", label=labels[n] if labels else None)
    if spikes is not None:
      fired = np.nonzero(np.asarray(spikes).reshape(u.shape)[:, n])[0]
      ax.plot(fired, np.full(fired.shape, threshold), "^", color=line.get_color(), ms=7)
  ax.axhline(threshold, ls="--", color="gray", label="threshold $V_{th}$")
  ax.set(xlabel="time step t", ylabel="membrane potential u", title=title)
  ax.legend(loc="best", fontsize="small")
  return _finish(fig, path)


def fi_curves(
  currents: Any,
  rates: Any,
  *,
  labels: Sequence[str],
  theory: Any | None = None,
  title: str = "f–I curves",
  path: str | Path | None = None,
) -> Figure:
  """Firing rate against constant input current, one curve per parameter set.

  Args:
    currents: ``[N]`` input currents.
    rates: ``[G, N]`` rates (spikes per step), e.g. from `dynamics.fi_curve`.
    labels: ``G`` legend labels.
    theory: optional ``[G, N]`` closed-form rates, drawn as thin black lines.
    title: the axes title.
    path: where to save the figure, if given.
  """
  currents, rates = np.asarray(currents), np.atleast_2d(np.asarray(rates))
  fig = Figure(figsize=(10, 4.5))
  ax = fig.add_subplot()
  for g, label in enumerate(labels):
    ax.plot(currents, rates[g], marker="o", ms=3, label=label)
  if theory is not None:
    for g, row in enumerate(np.atleast_2d(np.asarray(theory))):
      ax.plot(
        currents, row, color="black", lw=0.8, ls=":", label="closed form (LIF)" if g == 0 else None
      )
  ax.set(
    xlabel="input current X (constant)",
    ylabel="firing rate (spikes / step)",
    title=title,
    ylim=(-0.03, 1.03),
  )
  ax.grid(alpha=0.3)
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
  return _finish(fig, path)


def gate_sweep_heatmaps(
  sweep: GateSweep,
  alpha: Any,
  beta: Any,
  gamma: Any,
  *,
  quantity: str = "spike_count",
  title: str | None = None,
  path: str | Path | None = None,
) -> Figure:
  """Heat maps of a GLIF gate sweep over (α, γ), one panel per β value.

  Args:
    sweep: from `dynamics.gate_sweep(alpha, beta, gamma, ...)`.
    alpha, beta, gamma: the swept gate values.
    quantity: ``"spike_count"`` or ``"first_spike"`` (NaN, no spike, left blank).
    title: the figure title (default: the quantity).
    path: where to save the figure, if given.
  """
  if quantity not in ("spike_count", "first_spike"):
    raise ValueError(f"quantity must be 'spike_count' or 'first_spike', got {quantity!r}")
  values = np.asarray(getattr(sweep, quantity))
  alpha, beta, gamma = (np.atleast_1d(np.asarray(g)) for g in (alpha, beta, gamma))
  fig = Figure(figsize=(3.4 * len(beta) + 1, 3.4))
  axes = fig.subplots(1, len(beta), squeeze=False)[0]
  extent = (alpha[0], alpha[-1], gamma[0], gamma[-1])
  if len(alpha) > 1 and len(gamma) > 1:
    da, dg = (alpha[-1] - alpha[0]) / (len(alpha) - 1), (gamma[-1] - gamma[0]) / (len(gamma) - 1)
    extent = (alpha[0] - da / 2, alpha[-1] + da / 2, gamma[0] - dg / 2, gamma[-1] + dg / 2)
  vmin, vmax = np.nanmin(values), np.nanmax(values)
  for j, ax in enumerate(axes):
    image = ax.imshow(
      values[:, j, :].T,
      origin="lower",
      extent=extent,
      aspect="auto",
      cmap="viridis",
      vmin=vmin,
      vmax=vmax,
      interpolation="nearest",
    )
    ax.set(title=f"β = {beta[j]:.2g}", xlabel="α  (0: linear leak → 1: exp. decay)")
  axes[0].set_ylabel("γ  (0: soft reset → 1: hard reset)")
  label = {"spike_count": "spike count", "first_spike": "first spike (step)"}[quantity]
  fig.colorbar(image, ax=list(axes), label=label)
  fig.suptitle(title or f"GLIF gate sweep: {label}")
  return _finish(fig, path)


def firing_rate_bars(
  rates: Mapping[str, float],
  *,
  title: str = "Firing rate per layer",
  path: str | Path | None = None,
) -> Figure:
  """Horizontal bars of the mean firing rate of each neuron layer, in network order."""
  names, values = list(rates), [float(v) for v in rates.values()]
  fig = Figure(figsize=(6.5, 0.35 * len(names) + 1.5))
  ax = fig.add_subplot()
  y = np.arange(len(names))
  ax.barh(y, values, color="tab:blue")
  for yi, v in enumerate(values):
    ax.text(v, yi, f" {v:.3f}", va="center", fontsize="small")
  ax.set_yticks(y, names, fontsize="small")
  ax.invert_yaxis()
  ax.set(
    xlabel="firing rate (spikes / neuron / step)",
    title=title,
    xlim=(0, max(values + [1e-3]) * 1.25),
  )
  return _finish(fig, path)


def gate_histograms(
  gates: Mapping[str, Mapping[str, Any]],
  *,
  initial: Mapping[str, Mapping[str, Any]] | None = None,
  notes: Mapping[str, str] | None = None,
  bins: int = 20,
  title: str = "Learned GLIF gates",
  path: str | Path | None = None,
) -> Figure:
  """Histograms of the gate values of every GLIF layer, one panel per gate.

  Args:
    gates: ``{layer: {"alpha": values, "beta": values, "gamma": values}}`` (values after
      the sigmoid, e.g. from `network.glif_gates`).
    initial: the same at initialisation, drawn dashed in the layer's colour.
    notes: ``{gate: text}`` written under a panel's title (e.g. how far the gate moved).
    bins: histogram bins over [0, 1].
    title: the figure title.
    path: where to save the figure, if given.
  """
  fig = Figure(figsize=(12, 4.2))
  axes = fig.subplots(1, len(GATE_NAMES), sharey=True)
  edges = np.linspace(0, 1, bins + 1)
  for ax, gate in zip(axes, GATE_NAMES):
    for layer, values in gates.items():
      *_, (patch,) = ax.hist(
        np.ravel(values[gate]), bins=edges, histtype="step", lw=1.5, label=layer
      )
      if initial is not None and layer in initial:
        ax.hist(
          np.ravel(initial[layer][gate]), bins=edges, histtype="step", lw=1, ls="--",
          color=patch.get_edgecolor(),
        )  # fmt: skip
    ax.set(xlabel=GATE_LABELS[gate], xlim=(0, 1), title=(notes or {}).get(gate, ""))
    ax.title.set_fontsize("small")
  axes[0].set_ylabel("channels")
  axes[-1].legend(loc="best", fontsize="x-small")
  fig.suptitle(title)
  return _finish(fig, path)


def gate_evolution(
  steps: Any,
  gates: Mapping[str, Mapping[str, Any]],
  *,
  notes: Mapping[str, str] | None = None,
  title: str = "GLIF gates during training",
  path: str | Path | None = None,
) -> Figure:
  """Mean (± one standard deviation over channels) of each layer's gates against step.

  Args:
    steps: ``[S]`` training steps of the checkpoints.
    gates: ``{layer: {gate: values [S, C]}}`` (e.g. from `network.gate_evolution`).
    notes: ``{gate: text}`` written under a panel's title (e.g. how far the gate moved).
    title: the figure title.
    path: where to save the figure, if given.
  """
  steps = np.asarray(steps)
  fig = Figure(figsize=(12, 3.6))
  axes = fig.subplots(1, len(GATE_NAMES), sharey=True)
  for ax, gate in zip(axes, GATE_NAMES):
    for layer, values in gates.items():
      v = np.asarray(values[gate]).reshape(len(steps), -1)
      mean, std = v.mean(axis=1), v.std(axis=1)
      (line,) = ax.plot(steps, mean, marker=".", label=layer)
      ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    note = (notes or {}).get(gate)
    ax.set(
      xlabel="training step", title=GATE_LABELS[gate] + (f"\n{note}" if note else ""), ylim=(0, 1)
    )
    ax.title.set_fontsize("small")
  axes[0].set_ylabel("gate value (mean ± std over channels)")
  axes[-1].legend(loc="best", fontsize="x-small")
  fig.suptitle(title)
  return _finish(fig, path)


def _shown_image(image: Any) -> np.ndarray:
  """``image [H, W, C]`` scaled to [0, 1] for display: gray for C = 1, RGB for C = 3, the
  sum over channels otherwise (e.g. the two polarities of event frames)."""
  image = np.asarray(image, np.float64)
  image = image if image.shape[-1] == 3 else image.sum(axis=-1)
  low, high = image.min(), image.max()
  return (image - low) / (high - low) if high > low else np.zeros_like(image)


def spike_maps(
  image: Any,
  layers: Mapping[str, tuple[Any, Any]],
  *,
  title: str = "Spike maps",
  path: str | Path | None = None,
) -> Figure:
  """The spikes of a few channels of convolutional layers as images, one per time step,
  beside the input image.

  Args:
    image: the input ``[H, W, C]`` (drawn top left).
    layers: ``{layer: (spikes [T, K, H', W'], the K channel indices [K])}``, drawn as one row
      per channel and one column per time step (black: a spike).
    title: the figure title.
    path: where to save the figure, if given.
  """
  rows = sum(len(channels) for _, channels in layers.values())
  steps = max(np.shape(spikes)[0] for spikes, _ in layers.values())
  fig = Figure(figsize=(1.25 * (steps + 1) + 1, 1.25 * rows + 0.9))
  axes = fig.subplots(rows, steps + 1, squeeze=False)
  for ax in axes.flat:
    ax.set(xticks=[], yticks=[])
  for ax in axes[1:, 0]:
    ax.axis("off")
  axes[0, 0].imshow(_shown_image(image), cmap="gray", interpolation="nearest")
  axes[0, 0].set_title("input", fontsize="small")
  row = 0
  for layer, (spikes, channels) in layers.items():
    spikes = np.asarray(spikes)
    for k, channel in enumerate(channels):
      for t in range(spikes.shape[0]):
        ax = axes[row, t + 1]
        ax.imshow(spikes[t, k], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        if row == 0:
          ax.set_title(f"t = {t}", fontsize="small")
      rate = spikes[:, k].mean()
      axes[row, 1].set_ylabel(f"{layer}\nch {channel}, rate {rate:.2f}", fontsize="x-small")
      row += 1
  fig.suptitle(title)
  return _finish(fig, path)
