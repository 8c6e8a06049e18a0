"""The recurrent networks (`glif_jax.models.recurrent`): how they read an input as a
sequence, their weight counts, their errors, and a short training run from the configs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import smnist_recipe
from glif_jax import models
from glif_jax.models import recurrent
from glif_jax.training import train_and_evaluate

B, H, C = 2, 4, 3


def _images():
  return jnp.arange(B * H * H * C, dtype=jnp.float32).reshape(B, H, H, C)


def _sequence(layout, **options):
  timesteps = recurrent.sequence_length(layout, H, 5)
  return recurrent.SequenceInput(
    layout, timesteps=timesteps, in_channels=C, input_size=H, dtype=jnp.float32, **options
  )


def test_rows_pixels_and_frames_become_time_steps():
  x = np.asarray(_images())
  rows = _sequence("rows", permutation_seed=None)(x)
  assert rows.shape == (H, B, H * C)
  np.testing.assert_array_equal(rows[1, 0], x[0, 1].reshape(-1))  # step 1 = row 1
  pixels = _sequence("pixels", permutation_seed=None)(x)
  assert pixels.shape == (H * H, B, C)
  np.testing.assert_array_equal(pixels[H + 2, 1], x[1, 1, 2])  # step H + 2 = pixel (1, 2)
  frames = recurrent.SequenceInput(
    "sequence", timesteps=5, in_channels=7, input_size=None, permutation_seed=None, dtype=None
  )
  seq = np.arange(B * 5 * 7).reshape(B, 5, 7)
  np.testing.assert_array_equal(frames(seq), seq.transpose(1, 0, 2))


def test_permuted_rows_are_a_fixed_order_drawn_from_the_seed():
  x = np.asarray(_images())
  order = np.random.default_rng(7).permutation(H)
  assert not np.array_equal(order, np.arange(H))
  permuted = _sequence("rows", permutation_seed=7)(x)
  np.testing.assert_array_equal(permuted, _sequence("rows", permutation_seed=None)(x)[order])
  np.testing.assert_array_equal(_sequence("rows", permutation_seed=7)(x), permuted)


def test_the_permuted_network_is_the_rows_network_on_shuffled_rows():
  options = dict(layout="rows", width=8, timesteps=H, in_channels=C, num_classes=5, input_size=H)
  rows = recurrent.RecurrentSNN(**options, neuron="lif", rngs=nnx.Rngs(0))
  permuted = recurrent.RecurrentSNN(**options, neuron="lif", permutation_seed=7, rngs=nnx.Rngs(0))
  x = jax.random.uniform(jax.random.key(0), (B, H, H, C), maxval=3.0)
  order = np.random.default_rng(7).permutation(H)
  logits_permuted, logits_rows = permuted(x), rows(x)
  np.testing.assert_allclose(logits_permuted, rows(x[:, order]), rtol=1e-6)
  assert not np.allclose(logits_permuted, logits_rows)  # the order matters to the network


def _weights(name, neuron):
  model = nnx.eval_shape(
    lambda: models.create(
      name, num_classes=10, timesteps=28, in_channels=1, neuron=neuron, rngs=nnx.Rngs(0)
    )
  )
  return sum(a.size for a in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_the_gru_baseline_matches_the_spiking_networks_weights():
  # (28 + 128 + 1)·128 + (128 + 1)·10 = 21 386 (LIF: no neuron parameters);
  # GRU: 3·(28 + 70 + 1)·70 + (70 + 1)·10 = 21 500; GLIF adds (7 + 28)·128 = 4 480.
  assert _weights("srnn_rows", "lif") == 21386
  assert _weights("gru_rows", "glif") == 21500
  assert _weights("srnn_rows", "glif") == 21386 + 4480


@pytest.mark.parametrize(
  "options,message",
  [
    (dict(timesteps=4), r"layout 'rows' of 28x28 images has 28 time steps: timesteps must be 28"),
    (dict(neuron_options={"tau": 3.0}), r"the GRU has no spiking neurons: neuron_options"),
  ],
)
def test_build_errors_name_what_was_expected(options, message):
  name = "gru_rows" if "neuron_options" in options else "srnn_rows"
  kwargs = dict(num_classes=10, timesteps=28, in_channels=1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=message):
    models.create(name, **{**kwargs, **options})


def test_an_input_of_another_shape_is_refused_naming_both():
  model = models.create(
    "srnn_sequence",
    num_classes=3,
    timesteps=5,
    in_channels=7,
    width=4,
    neuron="lif",
    rngs=nnx.Rngs(0),
  )
  assert model(jnp.ones((B, 5, 7))).shape == (5, B, 3)
  with pytest.raises(ValueError, match=r"\[B, 5, 7\] \(layout 'sequence'\), got shape \(2, 6, 7\)"):
    model(jnp.ones((B, 6, 7)))


@pytest.mark.parametrize("neuron", ["glif", "gru"])
def test_the_sequential_mnist_recipe_trains(tmp_path, neuron):
  # The recipe on 8x8 synthetic images (T = 8 rows) at the smoke test's learning rate: far
  # above chance (1/4) in 120 steps.
  config = smnist_recipe.smnist_config(neuron)
  config.update(dict(dataset="synthetic", timesteps=8, width=16, num_train_steps=120))
  config.learning_rate = 1e-2
  config.update(dict(batch_size=32, eval_batch_size=64, log_every_steps=60, progress_bar=False))
  config.synthetic.image_size, config.synthetic.train_size = 8, 4096  # one eval, at the end
  train_and_evaluate(config, tmp_path)
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["test_accuracy"] > 0.6
  if neuron == "glif":
    assert 0.0 < summary["firing_rate"]["hidden"] < 1.0
