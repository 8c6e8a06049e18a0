"""The PLIF paper's networks are SpikingJelly's ``parametric_lif_net.py``, layer for layer.

1. Parameter counts against numbers derived by hand from SpikingJelly's classes (written
   per layer below): ``layer.Conv2d(..., bias=False)`` k×k cin→cout has k²·cin·cout
   weights, ``layer.BatchNorm2d(c)`` a weight and a bias per channel (2c; its running
   statistics are buffers, not parameters), ``layer.Linear(a, b)`` a·b + b (bias on),
   ``LIFNode`` none, ``ParametricLIFNode`` one w per layer.
2. One conv block (conv3x3 → BatchNorm2d in eval mode → LIF/PLIF → 2×2 max pool) against a
   NumPy transcription of their forward with the same weights: identical spikes.
3. Dropout (SpikingJelly's ``layer.Dropout``: one mask over all steps), voting, the
   neuron defaults, the configs, and one real ``train_and_evaluate`` of a tiny net.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import plif_nets
from glif_jax import data, models, surrogates
from glif_jax import nn as snn
from glif_jax.models import plif_net
from glif_jax.training import create_model, train_and_evaluate, validate_config
from glif_jax.training.input_pipeline import dataset_names
from tests.support.models import small_model
from tests.support.smoke import checked
from tests.support.torch_layers import nchw, oihw, seq_to_ann, their_conv


def _conv(cin: int, cout: int) -> int:
  return 3 * 3 * cin * cout  # layer.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False)


def _bn(c: int) -> int:
  return 2 * c  # layer.BatchNorm2d(c): weight + bias


def _linear(a: int, b: int) -> int:
  return a * b + b  # layer.Linear(a, b): weight + bias


# MNISTNet(channels=128) = FashionMNISTNet: conv 1→128 + BN, max pool (28 → 14),
# conv 128→128 + BN, max pool (14 → 7), Linear 128·7·7 → 2048, Linear 2048 → 100; 4 neurons.
MNIST = _conv(1, 128) + _bn(128) + _conv(128, 128) + _bn(128)
MNIST += _linear(128 * 7 * 7, 2048) + _linear(2048, 100)
# NMNISTNet(128): as MNISTNet with conv 2→128 and 34 → 17 → 8: Linear 128·8·8 → 2048.
NMNIST = _conv(2, 128) + _bn(128) + _conv(128, 128) + _bn(128)
NMNIST += _linear(128 * 8 * 8, 2048) + _linear(2048, 100)
# CIFAR10Net(256): 2 × (3 × (conv + BN + neuron), max pool), 32 → 16 → 8; conv 3→256 then
# five 256→256; Linear 256·8·8 → 2048, Linear 2048 → 100; 6 + 2 = 8 neurons.
CIFAR10 = _conv(3, 256) + 5 * _conv(256, 256) + 6 * _bn(256)
CIFAR10 += _linear(256 * 8 * 8, 2048) + _linear(2048, 100)
# CIFAR10DVSNet(128): 4 × (conv + BN + neuron + max pool), 128 → 8; conv 2→128 then three
# 128→128; Linear 128·8·8 → 512, Linear 512 → 100; 4 + 2 = 6 neurons.
CIFAR10DVS = _conv(2, 128) + 3 * _conv(128, 128) + 4 * _bn(128)
CIFAR10DVS += _linear(128 * 8 * 8, 512) + _linear(512, 100)
# DVSGestureNet(128): 5 × (conv + BN + neuron + max pool), 128 → 4; conv 2→128 then four
# 128→128; Linear 128·4·4 → 512, Linear 512 → 110 (11 classes × 10 votes); 7 neurons.
GESTURE = _conv(2, 128) + 4 * _conv(128, 128) + 5 * _bn(128)
GESTURE += _linear(128 * 4 * 4, 512) + _linear(512, 110)

NETWORKS = [
  # name, T, classes, in_channels, weights, neuron layers (PLIF: one w each)
  ("plif_net_mnist", 8, 10, 1, MNIST, 4),
  ("plif_net_fmnist", 8, 10, 1, MNIST, 4),
  ("plif_net_nmnist", 10, 10, 2, NMNIST, 4),
  ("plif_net_cifar10", 8, 10, 3, CIFAR10, 8),
  ("plif_net_cifar10dvs", 20, 10, 2, CIFAR10DVS, 6),
  ("plif_net_gesture", 20, 11, 2, GESTURE, 7),
]


def test_hand_derived_counts():
  # The sums above, evaluated by hand.
  assert MNIST == 1_152 + 256 + 147_456 + 256 + 12_847_104 + 204_900 == 13_201_124
  assert NMNIST == 2_304 + 256 + 147_456 + 256 + 16_779_264 + 204_900 == 17_134_436
  assert CIFAR10 == 6_912 + 2_949_120 + 3_072 + 33_556_480 + 204_900 == 36_720_484
  assert CIFAR10DVS == 2_304 + 442_368 + 1_024 + 4_194_816 + 51_300 == 4_691_812
  assert GESTURE == 2_304 + 589_824 + 1_280 + 1_049_088 + 56_430 == 1_698_926


def _counts(model: nnx.Module) -> tuple[int, int]:
  weights = nnx.state(model, nnx.All(nnx.Param, nnx.Not(snn.NeuronParam)))
  neurons = nnx.state(model, snn.NeuronParam)
  return tuple(sum(x.size for x in jax.tree.leaves(s)) for s in (weights, neurons))


def _abstract(name: str, **kwargs) -> nnx.Module:
  return nnx.eval_shape(lambda: models.create(name, rngs=nnx.Rngs(0), **kwargs))


@pytest.mark.parametrize("neuron", ["lif", "plif"])
@pytest.mark.parametrize("name,timesteps,classes,in_channels,weights,layers", NETWORKS)
def test_parameter_counts_match_spikingjelly(
  name, timesteps, classes, in_channels, weights, layers, neuron
):
  model = _abstract(
    name, num_classes=classes, timesteps=timesteps, in_channels=in_channels, neuron=neuron
  )
  assert _counts(model) == (weights, layers if neuron == "plif" else 0)


@pytest.mark.parametrize("name,timesteps,classes,in_channels,weights,layers", NETWORKS)
def test_output_is_the_voting_layers_per_step(
  name, timesteps, classes, in_channels, weights, layers
):
  del weights, layers
  model = _abstract(name, num_classes=classes, timesteps=timesteps, in_channels=in_channels)
  side = model.stem.input_size
  static = in_channels != 2  # event frames arrive time-major
  shape = (2, side, side, in_channels) if static else (timesteps, 2, side, side, in_channels)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  assert nnx.eval_shape(lambda m, x: m(x), model, x).shape == (timesteps, 2, classes)
  assert model.fc2.kernel.shape[-1] == plif_net.VOTES * classes


def test_voting_averages_each_classes_group_of_ten():
  spikes = jnp.zeros((1, 30)).at[0, 10:15].set(1.0).at[0, 29].set(1.0)
  np.testing.assert_allclose(plif_net.vote(spikes), [[0.0, 0.5, 0.1]])


def test_neurons_are_the_plif_papers():
  model = models.create(
    "plif_net_mnist", num_classes=10, timesteps=8, in_channels=1, width=2, rngs=nnx.Rngs(0)
  )
  neurons = [m for _, m in nnx.iter_graph(model) if isinstance(m, snn.SpikingNeuron)]
  assert len(neurons) == 4 and all(isinstance(n, snn.PLIF) for n in neurons)
  for n in neurons:  # τ₀ = 2: w = −log(τ₀ − 1) = 0; V_th 1, V_reset 0, detached, ATan(2)
    assert n.w.shape == () and float(n.w[...]) == 0.0
    assert n.constants.detach_reset and n.constants.surrogate == surrogates.atan(2.0)
    assert n.constants.v_th == 1.0 and n.constants.v_reset == 0.0
  lif = _abstract("plif_net_mnist", num_classes=10, timesteps=8, in_channels=1, neuron="lif")
  assert lif.stem_neuron.constants.tau == 2.0 and lif.stem_neuron.constants.detach_reset
  norms = [m for _, m in nnx.iter_graph(model) if isinstance(m, snn.TdBatchNorm)]
  assert len(norms) == 2 and all(m.factor == 1.0 for m in norms)  # BatchNorm2d


def test_dropout_mask_is_shared_over_time_and_redrawn_per_call():
  dropout = plif_net.SharedDropout(0.5, rngs=nnx.Rngs(0))
  x = jnp.ones((4, 8, 64))  # [T, B, F]
  first, second = np.asarray(dropout(x)), np.asarray(dropout(x))
  assert set(np.unique(first)) == {0.0, 2.0}  # kept elements scaled by 1/(1 − p)
  assert 0.4 < (first == 0).mean() < 0.6
  assert all((first[t] == first[0]).all() for t in range(4))  # one mask for all T steps
  assert not (first[:, 0] == first[:, 1]).all()  # each sample its own mask
  assert not (second == first).all()  # a new mask per call (training step)
  dropout.eval()
  np.testing.assert_array_equal(dropout(x), x)


def test_static_images_are_encoded_at_every_step():
  # Their static nets feed the image to the first conv at every step: the same as frames
  # that repeat the image T times.
  model = small_model("plif_net_mnist", num_classes=10, timesteps=3, width=4)
  image = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
  np.testing.assert_array_equal(model(image), model(jnp.broadcast_to(image, (3, 2, 8, 8, 1))))


# --- one block against NumPy: conv3x3 → BatchNorm2d (eval) → LIFNode/PLIF → MaxPool2d(2) ---


def _their_bn_eval(x, mean, var, weight, bias, eps=1e-5):
  """BatchNorm2d in eval mode on x [N, C, H, W]: the running statistics."""
  c = lambda v: np.asarray(v, np.float64).reshape(1, -1, 1, 1)
  return (x - c(mean)) / np.sqrt(c(var) + eps) * c(weight) + c(bias)


def _their_lif(x, decay, v_th=1.0, v_reset=0.0):
  """LIFNode / ParametricLIFNode (decay_input, hard reset) on x [T, ...], decay = 1/τ."""
  v = np.full(x.shape[1:], v_reset)
  out = np.zeros(x.shape)
  for t in range(x.shape[0]):
    h = v + (x[t] - (v - v_reset)) * decay
    out[t] = (h - v_th >= 0).astype(np.float64)
    v = h * (1 - out[t]) + v_reset * out[t]
  return out


def _their_max_pool(x):
  """MaxPool2d(2, 2) on x [N, C, H, W] (odd sides drop their last row)."""
  n, c, h, w = x.shape
  x = x[:, :, : h // 2 * 2, : w // 2 * 2]
  return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


@pytest.mark.parametrize("neuron,w", [("lif", None), ("plif", 0.7)])
def test_conv_block_equals_their_forward(neuron, w):
  timesteps, batch, side, channels = 4, 2, 7, 4
  model = models.create(
    "plif_net_mnist", num_classes=10, timesteps=timesteps, in_channels=1, width=channels,
    input_size=2 * side, neuron=neuron, rngs=nnx.Rngs(0),
  )  # fmt: skip
  block, pool = model.layers[1], model.layers[2]  # stage 2: conv-BN-neuron, then max pool
  rng = np.random.default_rng(0)
  norm = block.conv_norm.norm
  stats = {
    "mean": rng.uniform(-0.3, 0.3, channels),
    "var": rng.uniform(0.05, 0.2, channels),
    "scale": rng.uniform(1.5, 3.0, channels),
    "bias": rng.uniform(-0.3, 0.3, channels),
  }
  for name, variable in (("mean", norm.norm.mean), ("var", norm.norm.var)):
    variable[...] = jnp.asarray(stats[name], jnp.float32)
  norm.scale[...] = jnp.asarray(stats["scale"], jnp.float32)
  norm.bias[...] = jnp.asarray(stats["bias"], jnp.float32)
  if w is not None:
    block.neuron.w[...] = jnp.float32(w)
  model.eval()
  x = jax.random.bernoulli(jax.random.key(1), 0.4, (timesteps, batch, side, side, channels))
  ours = pool(block(x.astype(jnp.float32)))

  x = nchw(x)
  conv_w = oihw(block.conv_norm.conv)
  bn_args = (stats["mean"], stats["var"], stats["scale"], stats["bias"])
  conv_bn = lambda v: _their_bn_eval(their_conv(v, conv_w, 1, 1), *bn_args)
  decay = 0.5 if w is None else 1 / (1 + math.exp(-w))  # LIF τ = 2; PLIF 1/τ = sigmoid(w)
  spikes = _their_lif(seq_to_ann(conv_bn, x), decay)
  theirs = seq_to_ann(_their_max_pool, spikes)
  assert 0.05 < spikes.mean() < 0.95  # a non-trivial pattern
  np.testing.assert_array_equal(nchw(ours), theirs)


# --- configs -------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", sorted(plif_nets.DATASETS))
def test_configs_validate_and_build(dataset):
  config = plif_nets.get_config(f"{dataset},plif")
  validate_config(config, dataset_names=dataset_names(), num_devices=1)
  assert (config.optimizer, config.learning_rate, config.batch_size) == ("adam", 1e-3, 16)
  assert (config.cosine_period_epochs, config.num_epochs) == (64.0, 1024)
  info = data.info(config.dataset, **config.data_options)
  if info.is_event:  # frames at the sensor's size, one per step
    assert info.input_shape[:2] == (config.timesteps, plif_nets.FRAME_SIZE[dataset])
  config.width = 2
  model = nnx.eval_shape(lambda: create_model(checked(config), info))
  assert model.stem.input_size == info.input_shape[-2]


@pytest.mark.parametrize("arg", ["svhn,plif", "mnist,izhikevich"])
def test_config_rejects_unknown_dataset_or_neuron(arg):
  with pytest.raises(ValueError, match="must be one of"):
    plif_nets.get_config(arg)


def test_tiny_plif_net_trains_end_to_end(tmp_path):
  # plif_net_mnist at width 4, T = 2 on 8×8 synthetic images: a few real steps, an
  # evaluation, a checkpoint with the dropout layers' key and count.
  config = plif_nets.get_config("mnist,plif")
  config.dataset = "synthetic"
  config.synthetic.update(train_size=64, test_size=24, image_size=8, num_classes=4)
  config.update(width=4, timesteps=2, batch_size=16, eval_batch_size=16, num_epochs=1)
  config.update(num_train_steps=4, log_every_steps=2, progress_bar=False)
  state = train_and_evaluate(config, tmp_path)
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["steps"] == 4 and math.isfinite(summary["test_loss"])
  assert int(state.rest["dropout1"]["count"][...]) == 4  # one mask per training step
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))
