"""The optimiser: neuron parameters at lr × neuron_lr_scale (gates × gate_lr_scale more)
with no weight decay."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from glif_jax import nn
from glif_jax.nn import NeuronParam
from glif_jax.training import learning_rate_schedule, make_optimizer, param_labels

LR, MOMENTUM, WD, SCALE = 0.1, 0.9, 0.01, 0.1


def _params():
  return {
    "conv": {"kernel": nnx.Param(jnp.array([1.0, -2.0]))},
    "neuron": {"tau": NeuronParam(jnp.array([0.5])), "v_th": NeuronParam(jnp.array([-1.0]))},
  }


def _grads():
  return {
    "conv": {"kernel": nnx.Param(jnp.array([0.3, 0.4]))},
    "neuron": {"tau": NeuronParam(jnp.array([2.0])), "v_th": NeuronParam(jnp.array([-1.0]))},
  }


def _tx(**options):
  """`make_optimizer`: SGD at `LR`, `MOMENTUM`, `WD` and `SCALE` unless ``options`` say else."""
  defaults = dict(
    optimizer="sgd", learning_rate=LR, momentum=MOMENTUM, weight_decay=WD, neuron_lr_scale=SCALE
  )
  return make_optimizer(**(defaults | options))


def _values(tree):
  return {k: {n: np.asarray(v[...]) for n, v in sub.items()} for k, sub in tree.items()}


def test_labels():
  labels = param_labels(_params())
  assert labels == {"conv": {"kernel": "weights"}, "neuron": {"tau": "neuron", "v_th": "neuron"}}


def test_two_sgd_steps_match_hand_computation():
  params, grads, tx = _params(), _grads(), _tx()
  state = tx.init(params)
  w, tau = np.array([1.0, -2.0]), np.array([0.5])
  gw, gtau = np.array([0.3, 0.4]), np.array([2.0])
  buf_w = buf_tau = 0.0
  for _ in range(2):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    # PyTorch SGD: buf = m·buf + (g + wd·p); p -= lr·buf. Neuron params: no wd, lr × 0.1.
    buf_w = MOMENTUM * buf_w + gw + WD * w
    w = w - LR * buf_w
    buf_tau = MOMENTUM * buf_tau + gtau
    tau = tau - SCALE * LR * buf_tau
  got = _values(params)
  np.testing.assert_allclose(got["conv"]["kernel"], w, rtol=1e-6)
  np.testing.assert_allclose(got["neuron"]["tau"], tau, rtol=1e-6)


def test_adam_neuron_params_take_scaled_steps():
  tx = _tx(optimizer="adam", momentum=0.0, weight_decay=0.0)
  params, grads = _params(), _grads()
  updates, _ = tx.update(grads, tx.init(params), params)
  u = _values(updates)
  # Adam's first step is -lr · sign(g) (up to eps).
  np.testing.assert_allclose(u["conv"]["kernel"], [-LR, -LR], rtol=1e-5)
  np.testing.assert_allclose(u["neuron"]["v_th"], [SCALE * LR], rtol=1e-5)


def test_gradient_clipping():
  tx = _tx(
    learning_rate=1.0, momentum=0.0, weight_decay=0.0, neuron_lr_scale=1.0, grad_clip_norm=0.5
  )
  params = _params()
  grads = jax.tree.map(jnp.zeros_like, params)
  grads["conv"]["kernel"] = nnx.Param(jnp.array([3.0, 4.0]))  # norm 5, clipped to 0.5
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(_values(updates)["conv"]["kernel"], [-0.3, -0.4], rtol=1e-6)


def test_schedule_warmup_then_cosine_to_zero():
  schedule = learning_rate_schedule(0.1, total_steps=100, warmup_steps=10)
  np.testing.assert_allclose([schedule(0), schedule(10), schedule(100)], [0.0, 0.1, 0.0], atol=1e-7)
  cosine = learning_rate_schedule(0.1, total_steps=100)
  np.testing.assert_allclose([cosine(0), cosine(50), cosine(100)], [0.1, 0.05, 0.0], atol=1e-7)


def test_cosine_period_is_pytorchs_cosine_annealing_stepped_per_epoch():
  # CosineAnnealingLR(T_max=2), stepped once per epoch of 3 steps: lr·(1 + cos(π·e/2))/2 =
  # 0.1, 0.05, 0, then up again: 0.05 in epoch 3 and 0.1 in epoch 4 (period 2·T_max).
  schedule = learning_rate_schedule(0.1, total_steps=15, steps_per_epoch=3, cosine_period_epochs=2)
  lrs = [float(schedule(step)) for step in range(15)]
  expected = [0.1] * 3 + [0.05] * 3 + [0.0] * 3 + [0.05] * 3 + [0.1] * 3
  np.testing.assert_allclose(lrs, expected, atol=1e-7)
  with pytest.raises(ValueError, match="warm-up"):
    learning_rate_schedule(0.1, total_steps=15, warmup_steps=3, cosine_period_epochs=2)


def test_gates_take_the_gate_lr_and_the_other_neuron_params_the_neuron_lr():
  # The authors' --tunable-lif on CIFAR: α, β, γ at lr / 10, τ, V_th, leak, V_reset and
  # conductance at lr, none of them decayed; the weights at lr with weight decay. Plain
  # SGD at lr 0.1 with every gradient 1 and weight decay 0.01: a gate moves by
  # -0.1 · 0.1 · 1 = -0.01, τ by -0.1, a weight w = 2 by -0.1 · (1 + 0.01 · 2) = -0.102.
  glif = nn.GLIF(2, 3, gate_init="fixed", rngs=nnx.Rngs(0))
  params = {"conv": {"kernel": nnx.Param(jnp.full(2, 2.0))}, "glif": nnx.state(glif, nnx.Param)}
  labels = param_labels(params)
  assert labels["conv"]["kernel"] == "weights"
  assert {k: labels["glif"][k] for k in ("alpha", "beta", "gamma")} == dict.fromkeys(
    ("alpha", "beta", "gamma"), "gates"
  )
  for name in ("tau", "v_th", "leak", "v_reset", "conduct"):
    assert labels["glif"][name] == "neuron"
  tx = _tx(
    learning_rate=0.1, momentum=0.0, weight_decay=0.01, neuron_lr_scale=1.0, gate_lr_scale=0.1
  )
  grads = jax.tree.map(jnp.ones_like, params)
  u = _values(tx.update(grads, tx.init(params), params)[0])
  np.testing.assert_allclose(u["conv"]["kernel"], [-0.102, -0.102], rtol=1e-6)
  for gate in ("alpha", "beta", "gamma"):
    np.testing.assert_allclose(u["glif"][gate], np.full(2, -0.01), rtol=1e-6)
  np.testing.assert_allclose(u["glif"]["tau"], np.full(2, -0.1), rtol=1e-6)
  np.testing.assert_allclose(u["glif"]["conduct"], np.full((3, 2), -0.1), rtol=1e-6)
