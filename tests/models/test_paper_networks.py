"""The paper networks are the GLIF authors' (``Ikarosy/Gated-LIF`` at ac20aa7), layer for layer.

Two kinds of checks:

1. Parameter counts, total and neuron, for every network and class count the paper uses,
   held against numbers derived by hand from their code (each derivation is written next
   to its number; conv k×k cin→cout is bias-free: k²·cin·cout weights; every BN has a
   weight and a bias per channel; a channel-wise GLIF layer has (7 + T)·C parameters:
   α, β, γ, τ, V_th, leak, V_reset per channel and a T×C conductance).
2. Forward equivalence of one block per family: the same weights in our block and in a
   NumPy transcription of THEIR block's forward (NCHW convolution, their ``tdBatchNorm``
   or ``BatchNorm2d`` in training mode, their ``LIFSpike_CW`` loop, the shortcut) give
   identical spikes (and, for the MS block, the same membrane output).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from glif_jax import models
from glif_jax import nn as snn
from glif_jax.models import _layers, resnet, sew, zoo
from tests.support.torch_layers import nchw, oihw, seq_to_ann, their_conv


def _counts(model: nnx.Module) -> tuple[int, int]:
  weights = nnx.state(model, nnx.All(nnx.Param, nnx.Not(snn.NeuronParam)))
  neurons = nnx.state(model, snn.NeuronParam)
  return (
    sum(x.size for x in jax.tree.leaves(weights)),
    sum(x.size for x in jax.tree.leaves(neurons)),
  )


def _abstract(name: str, **kwargs) -> nnx.Module:
  """The model with shapes only (nothing initialised): counting stays fast."""
  return nnx.eval_shape(lambda: models.create(name, rngs=nnx.Rngs(0), **kwargs))


def _conv(cin: int, cout: int, k: int) -> int:
  return k * k * cin * cout


# --- ResNet-19 (ResNet_19_cifar_CW): stem 3→128; stages 3/3/2 blocks of 128/256/512,
# strides 1/2/2; each block two 3×3 convs, three BNs (body ×2 + shortcut, which is a BN
# even on the identity), a 1×1 conv on the shortcut where the shape changes, two GLIFs.
R19_CONVS = (
  _conv(3, 128, 3)  # stem
  + 3 * 2 * _conv(128, 128, 3)  # stage 1
  + _conv(128, 256, 3) + _conv(256, 256, 3) + _conv(128, 256, 1)  # stage 2, block 1
  + 2 * 2 * _conv(256, 256, 3)
  + _conv(256, 512, 3) + _conv(512, 512, 3) + _conv(256, 512, 1)  # stage 3, block 1
  + 1 * 2 * _conv(512, 512, 3)
)  # fmt: skip
R19_BN = 2 * (128 + 3 * 3 * 128 + 3 * 3 * 256 + 2 * 3 * 512)
R19_GLIF_CHANNELS = 128 + 3 * 2 * 128 + 3 * 2 * 256 + 2 * 2 * 512
# --- ResNet-18 (ResNet_18_stand_CW): stem 3→64; stages 2/2/2/2 of 64/128/256/512, strides
# 1/1/2/2; the stage-1 blocks keep the shape (BN-only shortcuts), stages 2-4 start with a
# 1×1 shortcut conv (the width changes even at stride 1).
R18_CONVS = (
  _conv(3, 64, 3)
  + 2 * 2 * _conv(64, 64, 3)
  + _conv(64, 128, 3) + _conv(128, 128, 3) + _conv(64, 128, 1) + 2 * _conv(128, 128, 3)
  + _conv(128, 256, 3) + _conv(256, 256, 3) + _conv(128, 256, 1) + 2 * _conv(256, 256, 3)
  + _conv(256, 512, 3) + _conv(512, 512, 3) + _conv(256, 512, 1) + 2 * _conv(512, 512, 3)
)  # fmt: skip
R18_BN = 2 * (64 + 2 * 3 * 64 + 2 * 3 * 128 + 2 * 3 * 256 + 2 * 3 * 512)
R18_GLIF_CHANNELS = 64 + 2 * 2 * (64 + 128 + 256 + 512)
# Head (lastave): ≤ 50 classes: FC 512→256 → FC 256→classes; more: FC 512→classes; no bias.
HEAD_10 = 512 * 256 + 256 * 10
HEAD_100 = 512 * 100
HEAD_1000 = 512 * 1000


def _ms_convs(depths: tuple[int, ...]) -> int:
  """ResNet-18MS/34MS (ResNet_*_stand_CW_MS): stem 7×7 3→64, then stages of 64/128/256/512
  with stride 2 each, so every stage's first block has a 1×1 shortcut conv (stage 1 too)."""
  total, cin = _conv(3, 64, 7), 64
  for depth, cout in zip(depths, (64, 128, 256, 512)):
    total += _conv(cin, cout, 3) + _conv(cout, cout, 3) + _conv(cin, cout, 1)
    total += (depth - 1) * 2 * _conv(cout, cout, 3)
    cin = cout
  return total


def _ms_glif_channels(depths: tuple[int, ...]) -> int:
  """Stem GLIF 64, then per MS block a GLIF on its input (cin) and one in the body (cout)."""
  total, cin = 64, 64
  for depth, cout in zip(depths, (64, 128, 256, 512)):
    total += (cin + cout) + (depth - 1) * 2 * cout
    cin = cout
  return total


MS18_BN = 2 * (64 + 3 * 64 * 2 + 3 * 128 * 2 + 3 * 256 * 2 + 3 * 512 * 2)
MS34_BN = 2 * (64 + 3 * (64 * 3 + 128 * 4 + 256 * 6 + 512 * 3))

# --- SEWResNet_GLIF_dsr (CIFAR10-DVS, T = 16): conv1x1 2→64 + BN + GLIF; 4 SEW blocks of 64
# (two conv3x3 + BN + GLIF each); conv1x1 64→128 + BN + GLIF; 3 SEW blocks of 128; average
# pooling after blocks 4-7 (48 → 3); FC 128·3·3 → 10 with bias.
DVS_WEIGHTS = (
  (_conv(2, 64, 1) + 2 * 64)
  + 4 * 2 * (_conv(64, 64, 3) + 2 * 64)
  + (_conv(64, 128, 1) + 2 * 128)
  + 3 * 2 * (_conv(128, 128, 3) + 2 * 128)
  + (128 * 3 * 3 * 10 + 10)
)
DVS_GLIF_CHANNELS = 64 + 4 * 2 * 64 + 128 + 3 * 2 * 128
# --- SEW-ResNet's DVS128 Gesture SEWResNet: conv1x1 2→32 + BN + PLIF; 7 SEW blocks of 32,
# max pooling after each (128 → 1); FC 32 → 11 with bias; PLIF has one τ per layer (15).
GESTURE_WEIGHTS = (_conv(2, 32, 1) + 2 * 32) + 7 * 2 * (_conv(32, 32, 3) + 2 * 32) + 32 * 11 + 11

PAPER_NETWORKS = [
  # name, T, classes, in_channels, weights, neuron parameters
  ("resnet19", 4, 10, 3, R19_CONVS + R19_BN + HEAD_10, (7 + 4) * R19_GLIF_CHANNELS),
  ("resnet19", 4, 100, 3, R19_CONVS + R19_BN + HEAD_100, (7 + 4) * R19_GLIF_CHANNELS),
  ("resnet18", 6, 10, 3, R18_CONVS + R18_BN + HEAD_10, (7 + 6) * R18_GLIF_CHANNELS),
  ("resnet18", 6, 100, 3, R18_CONVS + R18_BN + HEAD_100, (7 + 6) * R18_GLIF_CHANNELS),
  (
    "resnet18ms",
    6,
    1000,
    3,
    _ms_convs((2, 2, 2, 2)) + MS18_BN + HEAD_1000,
    (7 + 6) * _ms_glif_channels((2, 2, 2, 2)),
  ),
  (
    "resnet34ms",
    6,
    1000,
    3,
    _ms_convs((3, 4, 6, 3)) + MS34_BN + HEAD_1000,
    (7 + 6) * _ms_glif_channels((3, 4, 6, 3)),
  ),
  ("sew_dvs", 16, 10, 2, DVS_WEIGHTS, (7 + 16) * DVS_GLIF_CHANNELS),
  ("sew_gesture", 16, 11, 2, GESTURE_WEIGHTS, 1 + 7 * 2),
]


def test_hand_derived_counts():
  # The sums above, evaluated once by hand, so a slip in the helpers shows too.
  assert R19_CONVS == 12_553_600 and R19_BN == 13_312 and R19_GLIF_CHANNELS == 4_480
  assert R18_CONVS == 11_159_232 and R18_BN == 11_648 and R18_GLIF_CHANNELS == 3_904
  assert _ms_convs((2, 2, 2, 2)) == 11_171_008 and _ms_glif_channels((2, 2, 2, 2)) == 3_456
  assert _ms_convs((3, 4, 6, 3)) == 21_271_744 and _ms_glif_channels((3, 4, 6, 3)) == 7_168
  assert MS18_BN == 11_648 and MS34_BN == 22_784
  assert DVS_WEIGHTS == 1_202_442 and DVS_GLIF_CHANNELS == 1_472
  assert GESTURE_WEIGHTS == 130_411


@pytest.mark.parametrize("name,timesteps,classes,in_channels,weights,neurons", PAPER_NETWORKS)
def test_parameter_counts_match_the_authors(
  name, timesteps, classes, in_channels, weights, neurons
):
  model = _abstract(name, num_classes=classes, timesteps=timesteps, in_channels=in_channels)
  assert _counts(model) == (weights, neurons)


@pytest.mark.parametrize("classes,kernels", [(10, [(512, 256), (256, 10)]), (100, [(512, 100)])])
def test_resnet_head_depends_on_the_class_count(classes, kernels):
  model = _abstract("resnet19", num_classes=classes, timesteps=2, in_channels=3)
  assert [fc.kernel.shape for fc in model.classifier.fcs] == kernels
  assert all(fc.bias is None for fc in model.classifier.fcs)
  assert not any(isinstance(m, snn.SpikingNeuron) for _, m in nnx.iter_graph(model.classifier))


def test_ms_resnet_spatial_sizes_are_theirs():
  # 7×7/2 with padding 1: (224 + 2 − 7) // 2 + 1 = 110; then 3×3/2 padding 1 per stage:
  # 110 → 55 → 28 → 14 → 7 (PyTorch's floor((H + 2 − 3) / 2) + 1).
  model = _abstract("resnet18ms", num_classes=1000, timesteps=1, in_channels=3)
  x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
  stem = jax.eval_shape(lambda m, x: m.stem(x), model, x)
  assert stem.shape == (1, 1, 110, 110, 64)
  sizes = []
  u = stem
  for block in model.blocks:
    u = jax.eval_shape(lambda b, u: b(u), block, u)
    sizes.append(u.shape[2])
  assert sizes == [55, 55, 28, 28, 14, 14, 7, 7]
  assert isinstance(model.stem_neuron, snn.GLIF)


def test_dvs_network_defaults_are_the_authors_dvs_code():
  model = models.create("sew_dvs", num_classes=10, timesteps=16, in_channels=2, rngs=nnx.Rngs(0))
  neurons = [m for _, m in nnx.iter_graph(model) if isinstance(m, snn.GLIF)]
  assert len(neurons) == 1 + 4 * 2 + 1 + 3 * 2
  sig = lambda v: np.asarray(jax.nn.sigmoid(v[...]), np.float64)
  for n in neurons:
    np.testing.assert_allclose(sig(n.tau), 0.5, rtol=1e-6)
    np.testing.assert_allclose(sig(n.v_th), 0.99999, rtol=1e-6)
    np.testing.assert_allclose(sig(n.leak), 0.99999 / 32, rtol=1e-5)
    np.testing.assert_allclose(sig(n.v_reset), 0.99999, rtol=1e-6)
    np.testing.assert_allclose(sig(n.conduct), 0.9, rtol=1e-6)
    for gate in (n.alpha, n.beta, n.gamma):  # logits from U(−0.1, 0.1), not [0.8, 0.2, 0.8]
      assert np.all(np.abs(gate[...]) <= 0.1) and np.std(gate[...]) > 0.02
  norms = [m for _, m in nnx.iter_graph(model) if isinstance(m, snn.TdBatchNorm)]
  assert norms and all(m.factor == 1.0 for m in norms)  # BatchNorm2d: no α·V_th
  assert model.classifier.kernel.shape == (128 * 3 * 3, 10) and model.classifier.bias is not None


def test_options_override_the_model_neuron_defaults():
  model = models.create(
    "sew_dvs",
    num_classes=10,
    timesteps=2,
    in_channels=2,
    width=2,
    neuron_options={"tau": 0.3},
    rngs=nnx.Rngs(0),
  )
  np.testing.assert_allclose(jax.nn.sigmoid(model.stem_neuron.tau[...]), 0.3, rtol=1e-6)
  np.testing.assert_allclose(jax.nn.sigmoid(model.stem_neuron.conduct[...]), 0.9, rtol=1e-6)


# --- forward equivalence: their blocks, transcribed to NumPy (NCHW, float64) -------------


def _their_bn(x, weight, bias, *, alpha=1.0, vth=1.0, eps=1e-5):
  """tdBatchNorm (alpha·Vth·x̂·w + b) or BatchNorm2d (alpha·Vth = 1), training mode."""
  mean = x.mean(axis=(0, 2, 3), keepdims=True)
  var = x.var(axis=(0, 2, 3), keepdims=True)  # biased, as `input.var(unbiased=False)`
  c = (1, -1, 1, 1)
  return alpha * vth * (x - mean) / np.sqrt(var + eps) * weight.reshape(c) + bias.reshape(c)


def _their_glif(x, p):
  """LIFSpike_CW.forward on x [T, B, C, H, W]: returns (spikes, last membrane)."""
  s = {k: 1 / (1 + np.exp(-np.asarray(v, np.float64))) for k, v in p.items()}
  c = lambda v: v.reshape(1, -1, 1, 1)
  al, be, ga = c(s["alpha"]), c(s["beta"]), c(s["gamma"])
  u = np.zeros(x.shape[1:])
  out = np.zeros(x.shape)
  for step in range(x.shape[0]):
    o = out[max(step - 1, 0)]  # their o_{t−1}; at step 0 this is out[0], still zeros
    current = x[step] * (1 - be * (1 - c(s["conduct"][step])))
    u = (
      (1 - al * (1 - c(s["tau"]))) * u * (1 - ga * o)
      - (1 - al) * c(s["leak"])
      + current
      - (1 - ga) * c(s["v_reset"]) * o
    )
    out[step] = (u - c(s["v_th"]) > 0).astype(np.float64)
  return out, u


def _bn(norm: snn.TdBatchNorm, x, alpha=1.0):
  vth = norm.factor / alpha
  w, b = (np.asarray(v[...], np.float64) for v in (norm.scale, norm.bias))
  return _their_bn(x, w, b, alpha=alpha, vth=vth)


def _conv_bn(layer: _layers.ConvNorm, x, *, stride, padding, alpha=1.0):
  return _bn(layer.norm, their_conv(x, oihw(layer.conv), stride, padding), alpha)


def _glif(neuron: snn.GLIF, x):
  return _their_glif(x, {k: v[...] for k, v in nnx.state(neuron, snn.NeuronParam).items()})


def _randomize(module: nnx.Module, seed: int) -> None:
  """Trained-like values: BN scale 1.5-3 and bias ±0.3, neuron logits spread ±0.5-2."""
  rng = np.random.default_rng(seed)
  for _, m in nnx.iter_graph(module):
    if isinstance(m, snn.TdBatchNorm):
      m.scale[...] = jnp.asarray(rng.uniform(1.5, 3.0, m.scale.shape), jnp.float32)
      m.bias[...] = jnp.asarray(rng.uniform(-0.3, 0.3, m.bias.shape), jnp.float32)
    if isinstance(m, snn.GLIF):
      for name in ("alpha", "beta", "gamma"):
        getattr(m, name)[...] = jnp.asarray(rng.uniform(-2, 2, m.alpha.shape), jnp.float32)
      for name in ("tau", "v_th", "leak", "v_reset", "conduct"):
        v = getattr(m, name)
        v[...] = v[...] + jnp.asarray(rng.uniform(-0.5, 0.5, v.shape), jnp.float32)


def _layers_for(norm: str, neuron_options: dict, timesteps: int, init) -> dict:
  rngs = nnx.Rngs(0)
  return {
    "conv": _layers.conv_def(init, dtype=jnp.float32, rngs=rngs),
    "norm": functools.partial(_layers.norm_def(norm, axis_name=None, dtype=jnp.float32), rngs=rngs),
    "neuron": functools.partial(_layers.neuron_def("glif", timesteps, **neuron_options), rngs=rngs),
  }


T, B, SIDE = 3, 2, 6
ALPHA = 1 / np.sqrt(2)


def _assert_same_spikes(ours, theirs):
  ours = np.asarray(ours, np.float64)
  assert 0.05 < theirs.mean() < 0.95  # a non-trivial pattern
  np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("cin,cout,stride", [(4, 4, 1), (3, 4, 2)])
def test_basic_block_equals_their_basic_block_cw(cin, cout, stride):
  layers = _layers_for("tdbn", {}, T, _layers.KAIMING_FAN_OUT)
  block = resnet.BasicBlock(cin, cout, stride, **layers)
  _randomize(block, seed=cin + stride)
  x = jax.random.bernoulli(jax.random.key(stride), 0.4, (T, B, SIDE, SIDE, cin))
  ours = block(x.astype(jnp.float32))

  x = nchw(x)
  body = seq_to_ann(lambda v: _conv_bn(block.conv1.conv_norm, v, stride=stride, padding=1), x)
  body, _ = _glif(block.conv1.neuron, body)
  body = seq_to_ann(lambda v: _conv_bn(block.conv2, v, stride=1, padding=1, alpha=ALPHA), body)
  if stride == 1 and cin == cout:  # downsample = tdBN(α=1/√2) on the identity
    identity = seq_to_ann(lambda v: _bn(block.shortcut, v, alpha=ALPHA), x)
  else:  # downsample = conv1x1(stride) → tdBN(α=1/√2)
    identity = seq_to_ann(
      lambda v: _conv_bn(block.shortcut, v, stride=stride, padding=0, alpha=ALPHA), x
    )
  theirs, _ = _glif(block.neuron2, body + identity)
  _assert_same_spikes(nchw(ours), theirs)


def test_ms_block_equals_their_basic_block_cw_ms():
  cin = cout = 4
  layers = _layers_for("tdbn", {}, T, _layers.KAIMING_FAN_OUT)
  block = resnet.MSBlock(cin, cout, 1, **layers)
  _randomize(block, seed=7)
  u = 2 * jax.random.normal(jax.random.key(3), (T, B, SIDE, SIDE, cin))  # a membrane
  ours = block(u)
  ours_mid = block.conv1(_layers.fire(block.neuron0, u))

  u = nchw(u)
  spikes, _ = _glif(block.neuron0, u)  # body starts with LIFSpike_CW(inplanes)
  body = seq_to_ann(lambda v: _conv_bn(block.conv1.conv_norm, v, stride=1, padding=1), spikes)
  mid, _ = _glif(block.conv1.neuron, body)
  body = seq_to_ann(lambda v: _conv_bn(block.conv2, v, stride=1, padding=1, alpha=ALPHA), mid)
  theirs = body + seq_to_ann(lambda v: _bn(block.shortcut, v, alpha=ALPHA), u)  # shortcut on u
  _assert_same_spikes(nchw(ours_mid), mid)
  np.testing.assert_allclose(nchw(ours), theirs, rtol=1e-5, atol=1e-5)


def test_sew_block_equals_their_sew_block_glif_with_dvs_neuron_and_batchnorm2d():
  channels, timesteps = 4, 4
  layers = _layers_for("bn", zoo.DVS_GLIF, timesteps, _layers.TORCH_DEFAULT)
  block = sew.SEWBlock(channels, **layers)
  _randomize(block, seed=11)
  x = jax.random.bernoulli(jax.random.key(5), 0.5, (timesteps, B, SIDE, SIDE, channels))
  ours = block(x.astype(jnp.float32))

  x = nchw(x)
  out = x
  for layer in (block.conv1, block.conv2):  # conv3x3_GLIF: conv → BatchNorm2d → LIFSpike_CW
    conv_bn = functools.partial(_conv_bn, layer.conv_norm, stride=1, padding=1)
    out, _ = _glif(layer.neuron, seq_to_ann(conv_bn, out))
  _assert_same_spikes(nchw(ours) - x, out)  # ADD: out += x


@pytest.mark.parametrize("norm,factors", [(None, {1.0}), ("tdbn", {0.5, 0.5 * ALPHA})])
def test_ms_resnet_norm_is_batchnorm_as_their_imagenet_runs_unless_asked(norm, factors):
  # Their ImageNet train.py converts every tdBatchNorm to SyncBatchNorm (no α·V_th).
  model = _abstract("resnet18ms", num_classes=1000, timesteps=1, in_channels=3, norm=norm)
  norms = [m for _, m in nnx.iter_graph(model) if isinstance(m, snn.TdBatchNorm)]
  assert {round(m.factor, 6) for m in norms} == {round(f, 6) for f in factors}


def test_gesture_network_is_sews_with_plif():
  model = _abstract("sew_gesture", num_classes=11, timesteps=16, in_channels=2)
  neurons = [m for _, m in nnx.iter_graph(model) if isinstance(m, snn.SpikingNeuron)]
  assert len(neurons) == 15 and all(isinstance(n, snn.PLIF) for n in neurons)
  assert neurons[0].constants.detach_reset is True
  assert model.classifier.kernel.shape == (32, 11)
