"""Tests of the model zoo: shapes, gradients, modes, dtypes, options, errors.

Parameter counts and the equivalence with the authors' blocks: `test_paper_networks.py`.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from glif_jax import models
from glif_jax import nn as snn
from glif_jax.models import _layers, zoo

T, B, CLASSES = 2, 2, 5

# name -> (in_channels, static input side, tiny width)
TINY = {
  "resnet19": (3, 16, 4),
  "resnet18": (3, 16, 2),
  "resnet18ms": (3, 32, 2),
  "resnet34ms": (3, 32, 2),
  "sew_dvs": (2, 16, 4),
  "sew_gesture": (2, 128, 2),
  "cnn_small": (1, 28, 4),
  "mlp": (1, 28, 8),
  "plif_net_mnist": (1, 8, 2),
  "plif_net_fmnist": (1, 8, 2),
  "plif_net_nmnist": (2, 8, 2),
  "plif_net_cifar10": (3, 8, 2),
  "plif_net_cifar10dvs": (2, 16, 2),
  "plif_net_gesture": (2, 32, 2),
}


def _size(tree) -> int:
  return sum(leaf.size for leaf in jax.tree.leaves(tree))


def _tiny(name: str, neuron: str | None = None, **kw) -> nnx.Module:
  channels, side, width = TINY[name]
  return models.create(
    name,
    num_classes=CLASSES,
    timesteps=T,
    in_channels=channels,
    neuron=neuron,
    width=width,
    input_size=side,
    rngs=nnx.Rngs(0),
    **kw,
  )


def _input(name: str, *, events: bool = False) -> jax.Array:
  channels, side, _ = TINY[name]
  shape = (T, B, side, side, channels) if events else (B, side, side, channels)
  return jax.random.uniform(jax.random.key(1), shape)


def _loss_and_grads(model: nnx.Module, x: jax.Array):
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  labels = jnp.arange(B) % CLASSES

  def loss_fn(p):
    m = nnx.merge(graphdef, p, rest, copy=True)
    logits = m(x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits.mean(0), labels).mean()
    return loss, logits

  (_, logits), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
  return logits, grads


# The recurrent models: test_recurrent.py; resnet34ms is resnet18ms with deeper stages
# (its parameter count: test_paper_networks.py).
CASES = [(name, None) for name in TINY if name != "resnet34ms"]
CASES += [("resnet19", "klif"), ("cnn_small", "klif"), ("cnn_small", "lif"), ("mlp", "plif")]
CASES += [("mlp", "glif_f")]


@pytest.mark.parametrize("name,neuron", CASES)
def test_forward_backward(name, neuron):
  model = _tiny(name, neuron)
  logits, grads = _loss_and_grads(model, _input(name, events=name.startswith("sew")))
  assert logits.shape == (T, B, CLASSES)
  assert logits.dtype == jnp.float32
  assert np.isfinite(np.asarray(logits)).all()
  leaves = jax.tree.leaves(grads)
  assert all(np.isfinite(np.asarray(g)).all() for g in leaves)
  assert any(np.any(np.asarray(g) != 0) for g in leaves)
  if neuron is None and not name.startswith(("sew_gesture", "plif_net")):
    # GLIF's rectangle passes gradient to the first layer; a silent tiny KLIF/LIF/PLIF
    # net (V_th = 1, T = 2) may not, so only GLIF is checked here.
    first = jax.tree.leaves(grads["stem"])
    assert any(np.any(np.asarray(g) != 0) for g in first)


@pytest.mark.parametrize("name", ["sew_dvs", "cnn_small"])
def test_direct_encoding_equals_repeated_frames(name):
  model = _tiny(name)
  x = _input(name)
  repeated = jnp.broadcast_to(x[None], (T, *x.shape))
  np.testing.assert_allclose(model(x), model(repeated), rtol=1e-5, atol=1e-5)


def test_eval_mode_uses_running_statistics():
  model = _tiny("cnn_small")
  x = _input("cnn_small")
  model.train()
  model(x)
  model.eval()
  logits = model(x)
  assert logits.shape == (T, B, CLASSES)
  assert np.isfinite(np.asarray(logits)).all()
  before = nnx.state(model, nnx.BatchStat)
  model(x)
  unchanged = jax.tree.map(np.array_equal, before, nnx.state(model, nnx.BatchStat))
  assert all(jax.tree.leaves(unchanged))


def test_bfloat16_forward():
  model = _tiny("resnet19", dtype=jnp.bfloat16)
  logits = model(_input("resnet19"))
  assert logits.dtype == jnp.float32
  assert np.isfinite(np.asarray(logits)).all()
  assert {p.dtype for p in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype("float32")}


def test_every_neuron_is_a_distinct_submodule():
  model = _tiny("resnet19")
  neurons = [m for _, m in nnx.iter_graph(model) if isinstance(m, snn.SpikingNeuron)]
  # stem, 2 per block (8 blocks); the authors' head has none
  assert len(neurons) == len({id(n) for n in neurons}) == 1 + 2 * 8


def test_options_reach_the_neurons():
  model = _tiny("mlp", neuron_options={"gating": "hard", "unroll": 1})
  assert model.stem_neuron.constants.gating == "hard" and model.stem_neuron.unroll == 1


def test_block_remat_keeps_results_and_stores_less():
  x = _input("resnet19")

  def loss_grads_residuals(remat):
    graphdef, params, rest = nnx.split(_tiny("resnet19", remat=remat), nnx.Param, ...)
    forward = lambda p: nnx.merge(graphdef, p, rest, copy=True)(x)
    residuals = jax.eval_shape(lambda p: jax.vjp(forward, p)[1], params)
    loss, grads = jax.value_and_grad(lambda p: jnp.sum(forward(p) ** 2))(params)
    return loss, grads, sum(r.size * r.dtype.itemsize for r in jax.tree.leaves(residuals))

  loss, grads, stored = loss_grads_residuals(False)
  loss_remat, grads_remat, stored_remat = loss_grads_residuals(True)
  np.testing.assert_allclose(loss_remat, loss, rtol=1e-6)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads_remat, grads
  )
  assert stored_remat < stored / 2


@pytest.mark.parametrize(
  "shape,match",
  [
    ((28, 28, 1), "rank 4"),
    ((B, 28, 28, 3), "in_channels=1"),
    ((T + 1, B, 28, 28, 1), "T = timesteps = 2"),
    ((B, 32, 32, 1), "28x28"),
  ],
)
def test_bad_input_raises(shape, match):
  with pytest.raises(ValueError, match=match):
    _tiny("cnn_small")(jnp.zeros(shape))


def test_variants_carry_their_defaults():
  # Built directly, as Flax's ResNet18(num_classes=...): the paper's norm and neuron.
  tiny = {"in_channels": 2, "num_classes": CLASSES, "timesteps": T, "width": 2}
  dvs = models.SEWResNetDVS(input_size=16, rngs=nnx.Rngs(0), **tiny)
  np.testing.assert_allclose(jax.nn.sigmoid(dvs.stem_neuron.conduct[...]), 0.9, rtol=1e-6)
  gesture = models.SEWResNetGesture(input_size=128, rngs=nnx.Rngs(0), **tiny)
  assert isinstance(gesture.stem_neuron, snn.PLIF)
  assert gesture.stem_neuron.constants.detach_reset is True
  ms = models.ResNet18MS(rngs=nnx.Rngs(0), **tiny)
  assert ms.block_cls is models.MSBlock and ms.stem.layer.norm.factor == 1.0
  cifar = models.ResNet19(rngs=nnx.Rngs(0), neuron="klif", **tiny)
  assert cifar.block_cls is models.BasicBlock and cifar.stem.layer.norm.factor == 0.5
  assert isinstance(cifar.stem_neuron, snn.KLIF)


def test_flattening_models_are_the_variants_with_an_input_size():
  assert set(models.FLATTENING_MODELS) == set(models.MODEL_NAMES) - {
    "resnet19",
    "resnet18",
    "resnet18ms",
    "resnet34ms",
  }


def test_models_without_blocks_or_bn_refuse_remat_and_norm():
  args = {"num_classes": 10, "timesteps": T, "in_channels": 1, "width": 4, "rngs": nnx.Rngs(0)}
  with pytest.raises(ValueError, match="'mlp' has no batch norm: norm must be None"):
    models.create("mlp", norm="bn", **args)
  for name in ("mlp", "cnn_small"):
    with pytest.raises(TypeError, match="remat"):
      models.create(name, remat=True, **args)
  models.create("mlp", bn_axis_name="batch", **args)  # a layout setting: nothing to average


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"name": "resnet50"}, "model name must be one of"),
    ({"neuron": "izhikevich"}, "neuron must be one of"),
    ({"num_classes": 0}, "num_classes must be a positive int"),
    ({"width": 2.5}, "width must be a positive int"),
    ({"neuron_options": {"nonsense": 1}}, "invalid neuron_options"),
    ({"neuron": "klif", "neuron_options": {"tua": 2.0}}, "invalid neuron_options .* 'klif'"),
    ({"neuron": "plif", "neuron_options": {"tau": 2.0}}, "invalid neuron_options .* 'plif'"),
    ({"neuron": "lif", "neuron_options": {"k": 2.0}}, "invalid neuron_options .* 'lif'"),
    ({"neuron_options": {"timesteps": 3}}, "may not set"),
    ({"norm": "layernorm"}, "norm must be one of"),
    ({"dtype": jnp.int32}, "floating-point"),
  ],
)
def test_bad_arguments_raise(kwargs, match):
  args = {"name": "mlp", "num_classes": 10, "timesteps": T, "in_channels": 1, "width": 4}
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    models.create(args.pop("name"), rngs=nnx.Rngs(0), **args)


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_every_model_lists_what_it_takes(name):
  # What `create` passes, by the class's attributes; no **options anywhere.
  cls, variant = zoo._CLASSES[name], zoo._VARIANTS[name]
  takes = {"num_classes", "timesteps", "in_channels", "width", "neuron", "neuron_options"}
  takes |= {"dtype", "rngs"}
  takes |= {"norm", "bn_axis_name"} if cls.has_norm else set()
  takes |= {"input_size"} if cls.fixed_input_size else set()
  takes |= {"remat"} if cls.has_blocks else set()
  for signature in (inspect.signature(variant), inspect.signature(cls)):
    kinds = {p.kind for p in signature.parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds
  assert takes <= set(inspect.signature(variant).parameters)


def test_neuron_options_are_the_modules_keywords_and_constants():
  lif = {"tau", "v_th", "v_reset", "decay_input", "detach_reset", "surrogate", "unroll"}
  assert _layers.neuron_options("lif") == lif
  assert _layers.neuron_options("klif") == lif | {"k", "scale_reset"}
  assert _layers.neuron_options("plif") == lif - {"tau"} | {"init_tau"}
  glif = {"tau", "v_th", "leak", "v_reset", "conduct", "gate_init", "gating", "surrogate"}
  assert _layers.neuron_options("glif_f") == glif | {"detach_reset", "unroll"}


def test_neuron_def_checks_names_and_leaves_values_to_the_module():
  make = _layers.neuron_def("lif", T, tau=-1.0)  # a known name: no neuron is built yet
  with pytest.raises(ValueError, match="tau must be > 0, got -1.0"):
    make(4, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"'lif': LIF takes no \['k'\]; it takes \['decay_input'"):
    _layers.neuron_def("lif", T, k=2.0)
