"""Every plot runs headless and writes a non-empty, non-blank image."""

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from glif_jax import neurons
from glif_jax.analysis import dynamics, plots

T = 12
RNG = np.random.default_rng(0)
ALPHA, BETA, GAMMA = np.linspace(0, 1, 3), np.array([0.0, 1.0]), np.linspace(0, 1, 4)


def _sweep():
  spike_count = RNG.integers(0, T, (3, 2, 4)).astype(np.float32)
  first = np.where(spike_count > 0, 1.0, np.nan)
  return dynamics.GateSweep(spike_count, first, np.zeros((3, 2, 4, T)), np.zeros((3, 2, 4, T)))


GATES = {
  "stem": {g: RNG.uniform(0, 1, 16) for g in neurons.GATE_NAMES},
  "fc": {g: RNG.uniform(0, 1, 8) for g in neurons.GATE_NAMES},
}
CASES = {
  "raster": lambda path: plots.spike_raster(RNG.random((T, 5)) < 0.3, path=path),
  "membrane": lambda path: plots.membrane_trace(
    RNG.random((T, 2)), threshold=0.5, spikes=RNG.random((T, 2)) < 0.2, labels=["a", "b"], path=path
  ),
  "fi": lambda path: plots.fi_curves(
    np.linspace(0, 2, 9),
    np.sort(RNG.random((2, 9))),
    labels=["x", "y"],
    theory=np.sort(RNG.random((1, 9))),
    path=path,
  ),
  "sweep": lambda path: plots.gate_sweep_heatmaps(_sweep(), ALPHA, BETA, GAMMA, path=path),
  "first_spike": lambda path: plots.gate_sweep_heatmaps(
    _sweep(), ALPHA, BETA, GAMMA, quantity="first_spike", path=path
  ),
  "rates": lambda path: plots.firing_rate_bars({"stem": 0.2, "conv/neuron": 0.05}, path=path),
  "gate_hist": lambda path: plots.gate_histograms(GATES, path=path),
  "gate_hist_moved": lambda path: plots.gate_histograms(
    GATES, initial=GATES, notes={"alpha": "stem: mean |Δ| 0"}, path=path
  ),
  "spike_maps": lambda path: plots.spike_maps(
    RNG.random((6, 6, 1)), {"stem": (RNG.random((3, 2, 6, 6)) < 0.3, [0, 5])}, path=path
  ),
  "gate_evolution": lambda path: plots.gate_evolution(
    [0, 10, 20], {k: {g: RNG.uniform(0, 1, (3, 4)) for g in v} for k, v in GATES.items()}, path=path
  ),
}


@pytest.mark.parametrize("name", CASES)
def test_plot_writes_a_non_blank_png(name, tmp_path):
  path = tmp_path / f"{name}.png"
  fig = CASES[name](path)
  assert isinstance(fig, Figure)
  assert path.stat().st_size > 1000
  pixels = matplotlib.image.imread(path)
  assert pixels.ndim == 3 and pixels[..., :3].std() > 0.01  # not blank


def test_pdf_and_nested_folders(tmp_path):
  path = tmp_path / "a" / "b" / "raster.pdf"
  CASES["raster"](path)
  assert path.read_bytes()[:4] == b"%PDF"


def test_bad_quantity_is_rejected():
  with pytest.raises(ValueError, match="quantity"):
    plots.gate_sweep_heatmaps(_sweep(), ALPHA, BETA, GAMMA, quantity="rate")


def test_spike_maps_draw_each_channel_at_each_step_beside_the_input():
  spikes = RNG.random((3, 2, 6, 6)) < 0.3
  image = RNG.random((6, 6, 1))
  fig = plots.spike_maps(image, {"stem": (spikes, [0, 5])})
  axes = np.reshape(fig.axes, (2, 4))  # rows: channels; columns: input, t = 0, 1, 2
  for k in range(2):
    for t in range(3):
      np.testing.assert_array_equal(axes[k, t + 1].images[0].get_array(), spikes[t, k])
  shown = axes[0, 0].images[0].get_array()
  np.testing.assert_allclose(shown, (image[..., 0] - image.min()) / np.ptp(image))
  assert [ax.get_title() for ax in axes[0]] == ["input", "t = 0", "t = 1", "t = 2"]
  assert axes[1, 1].get_ylabel() == f"stem\nch 5, rate {spikes[:, 1].mean():.2f}"
