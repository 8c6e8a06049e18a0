"""The library's figures: they run on small grids and label what they simulated."""

import jax
import numpy as np
from flax import nnx

from glif_jax import models
from glif_jax.analysis import dynamics, figures, network
from glif_jax.neurons.glif import FIXED_GATES


def _texts(fig):
  ax = fig.axes[0]
  return [t.get_text() for t in ax.get_legend().get_texts()], ax.get_title()


def test_fi_curves_label_the_values_they_simulate(tmp_path):
  fig = figures.fi_curves(
    currents=[0.0, 1.5, 3.0],
    lif_taus=[3.0],
    lif_v_th=0.8,
    klif_ks=[1.5],
    timesteps=20,
    path=tmp_path / "fi.png",
  )
  labels, title = _texts(fig)
  assert labels[:2] == ["LIF τ=3, V_th=0.8", "KLIF k=1.5 (τ=2, V_th=0.8)"]
  a, b, g = FIXED_GATES
  assert f"GLIF α={a:g}, β={b:g}, γ={g:g}" in labels
  assert "GLIF α=1, β=0, γ=1: exp. decay, hard reset" in labels
  assert "T = 20" in title and "V_th=0.5" in title  # GLIF's default threshold
  assert (tmp_path / "fi.png").stat().st_size > 1000


def test_glif_types_draw_the_simulated_threshold_and_types():
  fig = figures.glif_types(gates=[(1.0, 0.0), (0.0, 1.0)], current=0.3, onset=1, timesteps=8)
  labels, title = _texts(fig)
  assert labels[:2] == ["α=1, γ=0: exp. decay, soft reset", "α=0, γ=1: linear leak, hard reset"]
  assert "X = 0.3 from t = 1" in title
  threshold = next(line for line in fig.axes[0].lines if line.get_linestyle() == "--")
  p = dynamics.glif_logits(alpha=1.0, beta=0.0, gamma=0.0, timesteps=8)
  np.testing.assert_allclose(threshold.get_ydata()[0], jax.nn.sigmoid(p.v_th[0]), rtol=1e-6)


def test_network_figures_write_the_model_figures(tmp_path):
  model = models.create("mlp", num_classes=3, timesteps=2, in_channels=1, width=8, rngs=nnx.Rngs(0))
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1), maxval=2.0)
  stats = network.network_statistics(model, x)
  paths = figures.network_figures(model, stats, x, tmp_path, raster_neurons=5)
  assert [p.name for p in paths] == ["firing_rates.png", "raster.png", "gates.png"]
  assert all(p.stat().st_size > 1000 for p in paths)
  assert "| `stem_neuron` |" in stats.markdown()
