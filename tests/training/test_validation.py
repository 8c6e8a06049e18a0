"""Inputs and configs: a correct result or a clear error naming what was expected and given.

Property tests (hypothesis) draw ranks, shapes, dtypes and parameter shapes for the public
neuron functions and `models.create`; a wrong shape must never broadcast silently.
"""

import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from configs import smoke
from glif_jax import models, neurons
from glif_jax.training import (
  checkpoints,
  experiment,
  input_pipeline,
  train_and_evaluate,
)
from tests.support import launch
from tests.support.smoke import checked

FAST = settings(max_examples=25, deadline=None)
FLOATS = ("float32", "bfloat16", "float16")
# One fault per example (None: a valid call), so about half the examples run the neuron.
SEQUENCE_FAULTS = (None, None, None, None, "dtype", "rank", "param", "state")


@st.composite
def _case(draw, *, step: bool, faults=SEQUENCE_FAULTS):
  """``(shape, dtype, per-channel parameter shape, fault)`` of a valid call before the fault.

  Sequence inputs are ``[T, *batch, C]``, step inputs ``[*batch, C]``.
  """
  shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1 if step else 2, max_size=4)))
  per_channel = draw(st.sampled_from([(), (shape[-1],)]))
  return shape, draw(st.sampled_from(FLOATS)), per_channel, draw(st.sampled_from(faults))


def _values(shape, dtype, seed, low=-1.5, high=2.5):
  values = np.random.default_rng(seed).uniform(low, high, size=shape)
  return jnp.asarray(values).astype(dtype)


def _fault(draw, fault, shape, dtype, per_channel, *, step):
  """Applies ``fault`` to a valid call.

  Returns:
    ``(shape, dtype, per-channel shape, state shape, expected (error, message) or None)``.
  """
  state_shape = shape if step else shape[1:]
  channels = shape[-1]
  expected = None
  if fault == "dtype":
    dtype = draw(st.sampled_from(["int32", "bool"]))
    expected = TypeError, f"floating-point array, got dtype {dtype}"
  elif fault == "rank":
    shape = () if step else draw(st.sampled_from([(), (channels,)]))
    expected = ValueError, re.escape(f"got shape {shape}")
  elif fault == "param":
    per_channel = draw(st.sampled_from([(channels + 1,), (channels, 1), (1, channels)]))
    expected = (
      ValueError,
      (
        re.escape(f"must have shape () or ({channels},)")
        + ".*"
        + re.escape(f"got shape {per_channel}")
      ),
    )
  elif fault == "state":
    right = state_shape
    state_shape = draw(st.sampled_from([(*right[:-1], channels + 1), (2, *right)]))
    expected = ValueError, re.escape(f"input, {right}, got {state_shape}")
  return shape, dtype, per_channel, state_shape, expected


def _check(run, expected, shape, dtype, state_shape):
  """``run()`` raises ``expected``, or returns well-formed spikes and state."""
  if expected is not None:
    error, message = expected
    with pytest.raises(error, match=message):
      run()
    return
  spikes, state = run()
  assert spikes.shape == shape and spikes.dtype == jnp.dtype(dtype)
  assert set(np.unique(np.asarray(spikes, np.float32))) <= {0.0, 1.0}
  for leaf in jax.tree.leaves(state):
    assert leaf.shape == state_shape and bool(jnp.all(jnp.isfinite(leaf)))


def _glif_params(per_channel, conduct_shape, seed):
  raw = [_values(per_channel, "float32", seed + i, -3.0, 3.0) for i in range(7)]
  return neurons.GLIFParams(*raw, conduct=_values(conduct_shape, "float32", seed + 7, -3.0, 3.0))


@FAST
@given(data=st.data(), case=_case(step=False, faults=(*SEQUENCE_FAULTS, "conduct")))
def test_glif_validates_or_runs(data, case):
  shape, dtype, per_channel, fault = case
  draw, seed = data.draw, data.draw(st.integers(0, 2**16))
  with_state = fault == "state" or draw(st.booleans())
  shape, dtype, per_channel, state_shape, expected = _fault(
    draw, fault, shape, dtype, per_channel, step=False
  )
  conduct = (shape[0] if shape else 1, *per_channel)
  if fault == "conduct":
    right, conduct = conduct, (conduct[0] + 1, *per_channel)
    expected = (
      ValueError,
      re.escape(f"conduct must have shape {right}") + ".*" + re.escape(f"got shape {conduct}"),
    )
  p = _glif_params(per_channel, conduct, seed)
  state = neurons.GLIFState.zeros(state_shape) if with_state else None
  constants = neurons.GLIFConstants(gating=draw(st.sampled_from(neurons.GATINGS)))
  x = _values(shape, dtype, seed)
  _check(lambda: neurons.glif(p, x, state, constants=constants), expected, shape, dtype, shape[1:])


@FAST
@given(data=st.data(), case=_case(step=True, faults=(*SEQUENCE_FAULTS, "conduct")))
def test_glif_step_validates_or_runs(data, case):
  shape, dtype, per_channel, fault = case
  draw, seed = data.draw, data.draw(st.integers(0, 2**16))
  shape, dtype, per_channel, state_shape, expected = _fault(
    draw, fault, shape, dtype, per_channel, step=True
  )
  conduct_t = per_channel
  if fault == "conduct":
    conduct_t = (shape[-1] + 2,)
    expected = (
      ValueError,
      re.escape(f"conduct_t must have shape {per_channel}")
      + ".*"
      + re.escape(f"got shape {conduct_t}"),
    )
  p = _glif_params(per_channel, (1, *per_channel), seed)
  state = neurons.GLIFState(
    _values(state_shape, dtype, seed, 0.0, 1.0), jnp.zeros(state_shape, dtype)
  )
  x_t = _values(shape, dtype, seed)
  run = lambda: neurons.glif_step(p, state, (x_t, _values(conduct_t, "float32", seed)))
  _check(run, expected, shape, dtype, shape)


def _tau(draw, fault):
  """A valid membrane time constant, or (fault "tau") an invalid one and its error."""
  if fault != "tau":
    return draw(st.sampled_from([2.0, 1.5, 10.0])), None
  tau = draw(st.sampled_from([0.0, -1.0, float("nan")]))
  return tau, (ValueError, re.escape(f"tau must be > 0, got {tau!r}"))


@FAST
@given(data=st.data(), case=_case(step=False, faults=(*SEQUENCE_FAULTS, "tau")))
def test_lif_plif_klif_validate_or_run(data, case):
  shape, dtype, per_channel, fault = case
  draw, seed = data.draw, data.draw(st.integers(0, 2**16))
  which = draw(st.sampled_from(["lif", "plif", "klif"] if fault != "tau" else ["lif", "klif"]))
  if which == "lif" and fault == "param":
    fault = None  # LIF has no parameters
  with_state = fault == "state" or draw(st.booleans())
  shape, dtype, per_channel, state_shape, expected = _fault(
    draw, fault, shape, dtype, per_channel, step=False
  )
  tau, tau_error = _tau(draw, fault)
  v_reset = draw(st.sampled_from([0.0, None]))
  constants = neurons.LIFConstants(v_reset=v_reset, tau=tau)
  state = neurons.LIFState(_values(state_shape, "float32", seed, 0.0, 1.0)) if with_state else None
  x = _values(shape, dtype, seed)
  if which == "lif":
    run = lambda: neurons.lif(x, state, constants=constants)
  elif which == "plif":
    p = neurons.PLIFParams(_values(per_channel, "float32", seed, -3.0, 3.0))
    run = lambda: neurons.plif(p, x, state, constants=neurons.LIFConstants(v_reset=v_reset))
  else:
    p = neurons.KLIFParams(_values(per_channel, "float32", seed, 0.2, 3.0))
    run = lambda: neurons.klif(p, x, state, constants=constants)
  _check(run, tau_error or expected, shape, dtype, shape[1:])


@FAST
@given(data=st.data(), case=_case(step=True, faults=(*SEQUENCE_FAULTS, "tau")))
def test_lif_and_klif_steps_validate_or_run(data, case):
  shape, dtype, per_channel, fault = case
  draw, seed = data.draw, data.draw(st.integers(0, 2**16))
  which = draw(st.sampled_from(["lif", "klif"]))
  if which == "lif" and fault == "param":
    fault = None
  shape, dtype, per_channel, state_shape, expected = _fault(
    draw, fault, shape, dtype, per_channel, step=True
  )
  tau, tau_error = _tau(draw, fault)
  state = neurons.LIFState(_values(state_shape, dtype, seed, 0.0, 1.0))  # steps do not cast it
  x_t = _values(shape, dtype, seed)
  constants = neurons.LIFConstants(tau=tau)
  if which == "lif":
    run = lambda: neurons.lif_step(None, state, x_t, constants=constants)
  else:
    p = neurons.KLIFParams(_values(per_channel, "float32", seed, 0.2, 3.0))
    run = lambda: neurons.klif_step(p, state, x_t, constants=constants)
  _check(run, tau_error or expected, shape, dtype, shape)


_COUNTS = (None, 3, 1, 0, -2, True, 2.5, "3")


@FAST
@given(
  channels=st.sampled_from(_COUNTS),
  timesteps=st.sampled_from(_COUNTS[1:]),
  gate_init=st.sampled_from(["random", "fixed", "uniform"]),
  with_key=st.booleans(),
)
def test_glif_params_validates_or_builds(channels, timesteps, gate_init, with_key):
  key = jax.random.key(0) if with_key else None

  def bad(value):
    return isinstance(value, bool) or not isinstance(value, int) or value < 1

  if gate_init not in ("random", "fixed"):
    expected = rf"gate_init must be one of .*got '{gate_init}'"
  elif channels is not None and bad(channels):
    expected = rf"channels must be a positive int or None .*got {re.escape(repr(channels))}"
  elif bad(timesteps):
    expected = rf"timesteps must be a positive int, got {re.escape(repr(timesteps))}"
  elif gate_init == "random" and key is None:
    expected = "needs a PRNG key"
  else:
    p = neurons.glif_params(channels, timesteps, gate_init=gate_init, key=key)
    per_channel = () if channels is None else (channels,)
    assert all(getattr(p, f).shape == per_channel for f in neurons.GLIFParams._fields[:-1])
    assert p.conduct.shape == (timesteps, *per_channel)
    return
  with pytest.raises(ValueError, match=expected):
    neurons.glif_params(channels, timesteps, gate_init=gate_init, key=key)


_CREATE_FAULTS = {
  "name": ("name", "resnet", "model name must be one of .*got 'resnet'"),
  "num_classes": ("num_classes", True, "num_classes must be a positive int, got True"),
  "timesteps": ("timesteps", 0, "timesteps must be a positive int, got 0"),
  "in_channels": ("in_channels", -1, "in_channels must be a positive int, got -1"),
  "width": ("width", 2.5, "width must be a positive int, got 2.5"),
  "dtype": (
    "dtype",
    jnp.dtype("int32"),
    r"dtype must be a floating-point dtype, got dtype\('int32'\)",
  ),
  "neuron": ("neuron", "izhikevich", "neuron must be one of .*got 'izhikevich'"),
}
_INPUT_FAULTS = {
  "rank 3": lambda t, b, h, c: ((h, h, c), r"static images \[B, H, W, C\] \(rank 4\) or event"),
  "channels": lambda t, b, h, c: ((b, h, h, c + 1), rf"in_channels={c} channels \(last axis\)"),
  "size": lambda t, b, h, c: ((b, h + 2, h + 2, c), rf"built for {h}x{h} inputs .*got shape"),
  "frames": lambda t, b, h, c: ((t + 1, b, h, h, c), rf"must have T = timesteps = {t}, got shape"),
}


@settings(max_examples=20, deadline=None)
@given(
  name=st.sampled_from(["mlp", "cnn_small"]),
  neuron=st.sampled_from(models.NEURON_NAMES),
  timesteps=st.integers(1, 2),
  in_channels=st.integers(1, 2),
  dtype=st.sampled_from(["float32", "bfloat16"]),
  fault=st.sampled_from([None, None, None, *_CREATE_FAULTS, *_INPUT_FAULTS]),
  events=st.booleans(),
  x_dtype=st.sampled_from(["float32", "uint8", "bool"]),
)
def test_create_validates_or_builds_a_working_model(
  name, neuron, timesteps, in_channels, dtype, fault, events, x_dtype
):
  kwargs = dict(
    name=name,
    num_classes=3,
    timesteps=timesteps,
    in_channels=in_channels,
    neuron=neuron,
    width=2,
    input_size=4,
    dtype=jnp.dtype(dtype),
  )
  if fault in _CREATE_FAULTS:
    key, value, message = _CREATE_FAULTS[fault]
    with pytest.raises(ValueError, match=message):
      models.create(**{**kwargs, key: value}, rngs=nnx.Rngs(0))
    return
  model = models.create(**kwargs, rngs=nnx.Rngs(0))
  shape = (timesteps, 2, 4, 4, in_channels) if events else (2, 4, 4, in_channels)
  if fault in _INPUT_FAULTS:
    shape, message = _INPUT_FAULTS[fault](timesteps, 2, 4, in_channels)
    with pytest.raises(ValueError, match=message + f".*{re.escape(str(shape))}"):
      model(jnp.ones(shape, x_dtype))
    return
  logits = model(jnp.ones(shape, x_dtype))
  assert logits.shape == (timesteps, 2, 3) and logits.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(logits)))


# --- configs: refused before anything is built or compiled ------------------------------------


def _del(key):
  def apply(config):
    with config.unlocked():
      del config[key]

  return apply


def _set(path, value):
  def apply(config):
    *parents, key = path.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    with config.unlocked():
      node[key] = value

  return apply


@pytest.mark.parametrize(
  "change, message",
  [
    (_set("learning_rat", 0.1), r"unknown key config\.learning_rat"),
    (_set("synthetic.train_sz", 8), r"unknown key config\.synthetic\.train_sz"),
    (_del("seed"), r"missing key config\.seed"),
    (_set("timesteps", 0), r"config\.timesteps must be > 0, got 0"),
    (_set("timesteps", -3), r"config\.timesteps must be > 0, got -3"),
    (_set("parallel", "shard_map"), r"config\.parallel must be one of \('jit', 'pmap'\)"),
    (_set("input_threads", -1), r"config\.input_threads must be >= 0, got -1"),
    (_set("neuron", "izhikevich"), r"config\.neuron must be one of \('glif', .*got 'izhikevich'"),
    (_set("dataset", "svhn"), r"config\.dataset must be one of \('mnist', .*got 'svhn'"),
    (_set("model", "vgg"), r"config\.model must be one of .*got 'vgg'"),
    (
      _set("nonfinite", "ignore"),
      r"config\.nonfinite must be one of \('skip', 'rollback', 'abort'\)",
    ),
    (_set("max_nonfinite_steps", -1), r"config\.max_nonfinite_steps must be >= 0, got -1"),
  ],
)
def test_bad_config_is_refused_before_anything_is_built(tmp_path, monkeypatch, change, message):
  config = smoke.get_config()
  change(config)

  def built(*args, **kwargs):
    raise AssertionError("something was built or compiled before the config was validated")

  for module, attr in ((jax, "jit"), (jax, "pmap"), (experiment, "create_model")):
    monkeypatch.setattr(module, attr, built)
  monkeypatch.setattr(input_pipeline, "load", built)
  with pytest.raises(ValueError, match=message):
    train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()  # not even the workdir


def test_a_misspelt_key_fails_where_it_is_set_naming_the_right_one():
  config = smoke.get_config()
  with pytest.raises(
    AttributeError, match='Did you mean "learning_rate" instead of "learning_rat"'
  ):
    config.learning_rat = 0.1
  config.neuron_options.v_th = 0.4  # free-form keyword arguments stay open


_CLUSTER_VARIABLES = ("SLURM_", "OMPI_", "PMI_", "JAX_COORDINATOR", "JAX_NUM_PROCESSES")


def _main(*args):
  env = {k: v for k, v in launch.cpu_env(1).items() if not k.startswith(_CLUSTER_VARIABLES)}
  return subprocess.run(
    [sys.executable, "-m", "train.main", "--config", "configs/smoke.py", *args],
    cwd=Path(__file__).parents[2],
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )


@pytest.mark.slow
def test_command_line_refuses_an_unknown_key_with_status_2(tmp_path):
  result = _main("--workdir", str(tmp_path / "run"), "--config.learning_rat=0.1")
  assert result.returncode == 2
  assert result.stderr == (
    "error: AttributeError in the config: 'learning_rat' "
    'Did you mean "learning_rate" instead of "learning_rat"?\n'
  )
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
  "recorded, args, message",
  [
    (False, ["--config.timesteps=0"], r"^error: config\.timesteps must be > 0, got 0$"),
    (
      False,
      ["--config.dataset=mnist", "--config.data_dir={tmp}/data", "--config.manual_dir={tmp}"],
      r"^error: .*mnist.*not found in .*To get it: ",
    ),
    (
      True,
      ["--config.learning_rate=0.5", "--config.seed=3"],
      r"^error: workdir .* holds a run with a different config .*\['learning_rate', 'seed'\]",
    ),
    (False, ["--config.distributed=True"], r"^error: .*no cluster was detected.*JAX_PROCESS_ID$"),
  ],
  ids=["bad value", "missing data", "workdir of another config", "no cluster"],
)
def test_user_mistakes_end_with_one_message_and_status_2(tmp_path, recorded, args, message):
  workdir = tmp_path / "run"
  if recorded:
    checkpoints.guard_workdir(workdir, checked(smoke.get_config()))  # a workdir of the smoke config
    (workdir / checkpoints.CHECKPOINT_DIR / "16").mkdir(parents=True)  # with a saved step
  result = _main("--workdir", str(workdir), *(a.format(tmp=tmp_path) for a in args))
  assert result.returncode == 2, result.stderr
  last = result.stderr.strip().splitlines()[-1]  # after library warnings, if any
  assert re.search(message, last) and "Traceback" not in result.stderr


def test_an_eval_batch_larger_than_the_test_split_is_cut_to_it():
  # 10 test examples and eval_batch_size 1e9: one batch of the split rounded up to the
  # device count, never a billion rows of padding.
  config = smoke.get_config()
  config.synthetic.test_size, config.eval_batch_size = 10, 10**9 * jax.device_count()
  config = checked(config)
  splits, _ = input_pipeline.load(config)
  (batch,) = input_pipeline.batches(splits["test"], config, train=False)
  rows = -(-10 // jax.device_count()) * jax.device_count()
  assert batch["image"].shape[0] == rows and int(batch["mask"].sum()) == 10
