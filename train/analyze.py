"""Analysis report of a trained run, and the README's neuron-dynamics figures.

Usage::

  python -m train.analyze --workdir runs/mnist_glif [--batch_size=64] [--out DIR]
  python -m train.analyze --docs docs

``--workdir`` rebuilds the model from the run's ``config.json``, restores its latest
checkpoint, runs one batch of test data and writes to ``DIR`` (default
``<workdir>/analysis``): ``report.md`` (accuracy on the batch, firing rate per layer,
spikes per sample, SOPs and the energy estimate against an ANN, per-layer operation
counts) and PNG figures (firing rates, a spike raster, GLIF gate histograms and their
evolution over the kept checkpoints). ``--docs`` writes the f–I curve, gate-sweep and
neuron-type figures made from the neuron equations alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging
from flax import nnx

from glif_jax import neurons
from glif_jax.analysis import dynamics, network, plots
from glif_jax.training import create_model, input_pipeline
from glif_jax.training.checkpoints import CHECKPOINT_DIR, CONFIG_FILE

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A train.main workdir to analyse.")
flags.DEFINE_string("out", None, "Output folder (default: <workdir>/analysis).")
flags.DEFINE_integer("batch_size", 64, "Test examples to run.")
flags.DEFINE_string("docs", None, "Write the README's dynamics figures to this folder.")

FI_TIMESTEPS = 200
SWEEP_TIMESTEPS = 40
TRACE_TIMESTEPS = 24


def dynamics_figures(out: Path) -> list[Path]:
  """The f–I curves, the GLIF gate sweep and the GLIF neuron types, as PNGs in ``out``."""
  currents = jnp.linspace(0.0, 3.0, 61)
  taus = jnp.array([2.0, 4.0])
  lif = dynamics.fi_curve(
    neurons.plif, dynamics.plif_logits(taus), currents, timesteps=FI_TIMESTEPS
  )
  theory = [
    [
      dynamics.lif_closed_form_rate(float(c), tau=float(t), v_th=1.0, timesteps=FI_TIMESTEPS)
      for c in currents
    ]
    for t in taus
  ]
  ks = jnp.array([0.5, 2.0])
  klif = dynamics.fi_curve(neurons.klif, neurons.KLIFParams(ks), currents, timesteps=FI_TIMESTEPS)
  glif_gates = {
    "alpha": jnp.array([1.0, 0.55, 0.0]),
    "beta": jnp.array([0.0, 0.65, 0.0]),
    "gamma": jnp.array([1.0, 0.55, 0.0]),
  }
  glif = dynamics.fi_curve(
    neurons.glif,
    dynamics.glif_logits(**glif_gates, timesteps=FI_TIMESTEPS),
    currents,
    timesteps=FI_TIMESTEPS,
  )
  labels = (
    [f"LIF τ={t:g}, V_th=1" for t in taus]
    + [f"KLIF k={k:g} (τ=2, V_th=1)" for k in ks]
    + [
      "GLIF α=1, β=0, γ=1: exp. decay, hard reset",
      "GLIF fixed gates α=.55, β=.65, γ=.55",
      "GLIF α=β=γ=0: linear leak, soft reset",
    ]
  )
  paths = [out / "fi_curve.png", out / "gate_sweep.png", out / "glif_types.png"]
  plots.fi_curves(
    currents,
    jnp.concatenate([lif, klif, glif]),
    labels=labels,
    theory=theory,
    title=f"f–I curves (T = {FI_TIMESTEPS}; GLIF: default τ=.25, V_th=.5)",
    path=paths[0],
  )

  alpha, gamma, beta = jnp.linspace(0, 1, 21), jnp.linspace(0, 1, 21), jnp.array([0.0, 0.5, 1.0])
  conduct = jnp.linspace(0.1, 0.9, SWEEP_TIMESTEPS)
  sweep = dynamics.gate_sweep(
    alpha, beta, gamma, jnp.full((SWEEP_TIMESTEPS,), 0.5), conduct=conduct
  )
  plots.gate_sweep_heatmaps(
    sweep,
    alpha,
    beta,
    gamma,
    title=f"GLIF gate sweep: spikes in {SWEEP_TIMESTEPS} steps of X = 0.5 "
    "(conductance G_t rising 0.1 → 0.9)",
    path=paths[1],
  )

  corners = {"alpha": jnp.array([1.0, 1.0, 0.0, 0.0]), "gamma": jnp.array([1.0, 0.0, 1.0, 0.0])}
  x = dynamics.step_current(0.42, TRACE_TIMESTEPS, onset=2)
  spikes, trace = dynamics.simulate(
    neurons.glif, dynamics.glif_logits(**corners, beta=0.0, timesteps=TRACE_TIMESTEPS), x
  )
  plots.membrane_trace(
    trace.u[..., 0].T,
    threshold=0.5,
    spikes=spikes[..., 0].T,
    labels=[
      "α=1, γ=1: exp. decay, hard reset",
      "α=1, γ=0: exp. decay, soft reset",
      "α=0, γ=1: linear leak, hard reset",
      "α=0, γ=0: linear leak, soft reset",
    ],
    title="GLIF gates select the neuron type (β = 0, step input X = 0.42 from t = 2)",
    path=paths[2],
  )
  return paths


def _test_batch(config: ml_collections.ConfigDict, batch_size: int):
  splits, info = input_pipeline.load(config)
  batch = next(input_pipeline.batches(splits["test"], config, train=False))
  images, labels = (
    batch[k].reshape(-1, *batch[k].shape[2:])[:batch_size] for k in ("image", "label")
  )
  if images.ndim == 5:  # event frames [B, T, ...] -> time-major
    images = np.swapaxes(images, 0, 1)
  return info, jnp.asarray(images), np.asarray(labels)


def _markdown(
  workdir: Path, step: int, accuracy: float, stats: network.NetworkStats, figures: list[Path]
) -> str:
  per_sample = stats.spike_counts
  lines = [
    f"# Analysis of `{workdir}`",
    "",
    (f"Checkpoint step {step}; {len(per_sample)} test examples; accuracy on them {accuracy:.4f}."),
    "",
    (
      f"- spikes per sample: {per_sample.mean():.1f} (min {per_sample.min():.0f}, "
      f"max {per_sample.max():.0f})"
    ),
    f"- synaptic operations (SOPs) per sample: {stats.sops:.4g}",
    (
      f"- MACs per sample: {stats.encoding_macs:.4g} in the encoding layer; the ANN of the "
      f"same architecture: {stats.ann_macs:.4g}"
    ),
    (
      f"- energy per sample (E_MAC = {network.E_MAC_PJ} pJ, E_AC = {network.E_AC_PJ} pJ): "
      f"SNN {stats.snn_energy_pj / 1e6:.4g} µJ, ANN {stats.ann_energy_pj / 1e6:.4g} µJ "
      f"(ratio {stats.energy_ratio:.2f}×)"
    ),
    "",
    "| neuron layer | firing rate | min channel | max channel |",
    "|---|---|---|---|",
    *(
      f"| `{k}` | {v.mean():.4f} | {v.min():.4f} | {v.max():.4f} |"
      for k, v in stats.firing_rates.items()
    ),
    "",
    "| synaptic layer | kind | input rate | MACs (as run) | ANN MACs | SOPs |",
    "|---|---|---|---|---|---|",
    *(
      f"| `{s.name}` | {s.kind}{' (encoding)' if s.encoding else ''} | {s.input_rate:.4f} | "
      f"{s.macs:,} | {s.ann_macs:,} | {s.sops:.4g} |"
      for s in stats.synapses
    ),
    "",
    *(f"![{f.stem}]({f.name})" for f in figures),
  ]
  summary = workdir / "summary.json"
  if summary.exists():
    lines += [
      "",
      "Training summary (`summary.json`):",
      "",
      "```json",
      summary.read_text().strip(),
      "```",
    ]
  return "\n".join(lines) + "\n"


def report(workdir: Path, out: Path, batch_size: int) -> Path:
  """Writes ``report.md`` and figures for the run in ``workdir`` to ``out``."""
  config = ml_collections.ConfigDict(json.loads((workdir / CONFIG_FILE).read_text()))
  info, images, labels = _test_batch(config, batch_size)
  model = create_model(config, info, bn_axis_name=None)
  step = network.restore_model(model, workdir / CHECKPOINT_DIR)
  model.eval()
  stats = network.network_statistics(model, images)
  logits = nnx.jit(lambda m, x: m(x))(model, images)
  accuracy = float(np.mean(np.argmax(np.asarray(logits).mean(axis=0), -1) == labels))
  out.mkdir(parents=True, exist_ok=True)
  figures = [out / "firing_rates.png", out / "raster.png"]
  plots.firing_rate_bars(stats.layer_rates, path=figures[0])
  name, spikes = next(iter(network.neuron_spikes(model, images[:1]).items()))
  flat = np.asarray(spikes)[:, 0].reshape(spikes.shape[0], -1)
  plots.spike_raster(
    flat[:, :64], title=f"Spikes of `{name}`, first 64 neurons, one example", path=figures[1]
  )
  gates = network.glif_gates(model)
  if gates:
    figures.append(plots.save_figure(plots.gate_histograms(gates), out / "gates.png"))
    steps, evolution = network.gate_evolution(workdir / CHECKPOINT_DIR)
    figures.append(
      plots.save_figure(plots.gate_evolution(steps, evolution), out / "gate_evolution.png")
    )
  path = out / "report.md"
  path.write_text(_markdown(workdir, step, accuracy, stats, figures))
  return path


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.workdir is None and FLAGS.docs is None:
    raise app.UsageError("give --workdir (a run to analyse) and/or --docs (a folder)")
  logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
  if FLAGS.docs is not None:
    for path in dynamics_figures(Path(FLAGS.docs)):
      print(f"wrote {path}")
  if FLAGS.workdir is not None:
    workdir = Path(FLAGS.workdir)
    print(f"wrote {report(workdir, Path(FLAGS.out or workdir / 'analysis'), FLAGS.batch_size)}")


if __name__ == "__main__":
  app.run(main)
