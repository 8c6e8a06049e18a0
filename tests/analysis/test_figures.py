"""The library's figures: they run on small grids and label what they simulated."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from glif_jax import models
from glif_jax.analysis import dynamics, figures, network, plots
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


def _mnist_like(n: int) -> jax.Array:
  """Images ``[n, 12, 12, 1]`` black but for a bright 4×4 centre: MNIST's border is black."""
  x = np.zeros((n, 12, 12, 1), np.float32)
  x[:, 4:8, 4:8] = np.random.default_rng(0).uniform(1.0, 2.0, (n, 4, 4, 1))
  return jnp.asarray(x)


def _trained_cnn_small(x: jax.Array, steps: int = 5) -> nnx.Module:
  """A tiny ``cnn_small`` after a few Adam steps on ``x`` (labels: the brighter half)."""
  model = models.create(
    "cnn_small", num_classes=2, timesteps=2, in_channels=1, width=4, input_size=12,
    rngs=nnx.Rngs(0),
  )  # fmt: skip
  labels = (x.mean(axis=(1, 2, 3)) > jnp.median(x.mean(axis=(1, 2, 3)))).astype(jnp.int32)
  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer):
    loss = lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x).mean(0), labels).mean()
    optimizer.update(model, nnx.grad(loss)(model))

  for _ in range(steps):
    step(model, optimizer)
  model.eval()
  return model


def test_rasters_show_firing_neurons_of_every_dense_layer():
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1), maxval=2.0)
  model = models.create(
    "mlp", num_classes=3, timesteps=3, in_channels=1, width=32, rngs=nnx.Rngs(0)
  )
  panels = figures.raster_panels(model, x, k=16)
  spikes = network.neuron_spikes(model, x[:1])
  assert len(panels) == len(spikes) > 0
  for (name, s), (title, chosen) in zip(spikes.items(), panels.items()):
    flat = np.asarray(s)[:, 0]
    counts, all_counts = chosen.sum(axis=0), flat.sum(axis=0)
    firing = np.count_nonzero(all_counts)
    shown = min(16, firing)
    assert title == f"`{name}`: {shown} of {firing:,} firing (of {flat.shape[1]:,})"
    assert firing > 0 and chosen.shape == (3, shown)
    assert np.all(counts > 0) and np.all(np.diff(counts) <= 0)  # spikes, most active first
    assert counts[0] == all_counts.max() and counts[-1] == all_counts[all_counts > 0].min()


def test_spike_maps_show_the_input_where_it_is_bright():
  x = _mnist_like(8)
  model = _trained_cnn_small(x)
  maps = figures.spike_map_layers(model, x, channels=3)
  spikes = network.neuron_spikes(model, x[:1])
  assert list(maps) == list(spikes) == ["stem_neuron", "conv/neuron"]
  for name, (shown, channels) in maps.items():
    every = np.moveaxis(np.asarray(spikes[name])[:, 0], -1, 1)  # [T, C, H, W]
    counts = every.sum(axis=(0, 2, 3))
    assert shown.shape == (2, len(channels), *every.shape[2:]) and 0 < len(channels) <= 3
    np.testing.assert_array_equal(shown, every[:, channels])
    assert counts[channels[0]] == counts.max() and np.all(np.diff(counts[channels]) <= 0)
  stem, _ = maps["stem_neuron"]
  # the 3×3 convolution of a 4×4 bright centre (rows and columns 4..7) reaches 3..8 only
  assert stem[..., 3:9, 3:9].any() and not stem[..., :3, :].any() and not stem[..., 9:, :].any()
  np.testing.assert_array_equal(figures.input_image(x), np.asarray(x[0]))
  frames = jnp.ones((4, 2, 5, 5, 2))  # time-major event frames: summed over T
  np.testing.assert_array_equal(figures.input_image(frames), np.full((5, 5, 2), 4.0))


def test_gate_movement_and_its_notes_are_the_hand_computed_changes():
  before = {"l": {"alpha": [0.5, 0.5], "beta": [0.2, 0.4], "gamma": [0.9, 0.1]}}
  after = {"l": {"alpha": [0.5, 0.6], "beta": [0.2, 0.4], "gamma": [0.6, 0.2]}}
  moved = network.gate_movement(before, after)["l"]
  np.testing.assert_allclose(moved["alpha"], (0.05, 0.1, 0.5, 0.55))
  np.testing.assert_allclose(moved["beta"], (0.0, 0.0, 0.3, 0.3))
  np.testing.assert_allclose(moved["gamma"], (0.2, 0.3, 0.5, 0.4))
  notes = figures.gate_notes({"l": moved})
  assert notes["gamma"] == "l: mean |Δ| 0.200, largest 0.300"


def test_firing_sample_spaces_the_firing_neurons_evenly_by_spike_count():
  spikes = np.array([[0, 1, 1, 0, 1, 1, 0], [0, 0, 1, 0, 1, 0, 1]])  # counts 0 1 2 0 2 1 1
  # ranked firing neurons: 2, 4 (2 spikes), 1, 5, 6 (1 spike); 3 of 5: ranks 0, 2, 4
  np.testing.assert_array_equal(figures.firing_sample(spikes, 3), spikes[:, [2, 1, 6]])
  np.testing.assert_array_equal(figures.firing_sample(spikes, 9), spikes[:, [2, 4, 1, 5, 6]])
  assert figures.firing_sample(np.zeros((2, 4)), 3).shape == (2, 0)


def test_network_figures_write_the_model_figures(tmp_path):
  model = models.create("mlp", num_classes=3, timesteps=2, in_channels=1, width=8, rngs=nnx.Rngs(0))
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1), maxval=2.0)
  stats = network.network_statistics(model, x)
  paths = figures.network_figures(model, stats, x, tmp_path, raster_neurons=5)
  assert [p.name for p in paths] == ["firing_rates.png", "raster.png", "gates.png"]
  assert all(p.stat().st_size > 1000 for p in paths)
  assert "| `stem_neuron` |" in stats.markdown()


def test_network_figures_of_a_conv_net_draw_spike_maps_and_the_gates_movement(tmp_path):
  x = _mnist_like(2)
  model = _trained_cnn_small(x, steps=0)
  gates = network.glif_gates(model)
  initial = {layer: {g: v - 0.01 for g, v in values.items()} for layer, values in gates.items()}
  stats = network.network_statistics(model, x)
  paths = figures.network_figures(model, stats, x, tmp_path, initial_gates=initial)
  assert [p.name for p in paths] == ["firing_rates.png", "spike_maps.png", "gates.png"]
  assert all(p.stat().st_size > 1000 for p in paths)
  notes = figures.gate_notes(network.gate_movement(initial, gates))
  titles = [ax.get_title() for ax in plots.gate_histograms(gates, notes=notes).axes]
  assert titles[0] == "\n".join(f"{layer}: mean |Δ| 0.010, largest 0.010" for layer in gates)
  assert sorted(gates) == ["conv/neuron", "stem_neuron"]
