"""NaN/inf guard: a non-finite step is never applied; skip, rollback or abort by config."""

import functools
import json
import logging

import jax
import numpy as np
import pytest

from glif_jax.training import (
  DataPosition,
  Layout,
  NonFiniteError,
  actions,
  create_model,
  create_train_state,
  input_pipeline,
  make_loss,
  make_tx,
  train_and_evaluate,
  train_step,
)
from glif_jax.training.steps import FINITE, FINITE_LEAVES, guarded_leaf_names
from tests.support.smoke import checked, host_leaves, smoke_config

STEPS, PER_EPOCH = 12, 4  # 128 training examples in batches of 32


_config = functools.partial(
  smoke_config, 128, 32, STEPS, log_every_steps=2, checkpoint_every_steps=2
)


# --- the step ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup():
  config = checked(_config())
  splits, info = input_pipeline.load(config)
  graphdefs, state = create_train_state(
    create_model(config, info, bn_axis_name=None),
    make_tx(config, PER_EPOCH, STEPS),
  )
  batch = next(input_pipeline.batches(splits["train"], config, train=True))
  return config, graphdefs, jax.device_get(state), batch


@pytest.fixture(scope="module")
def jit_step(setup):
  config, graphdefs, _, _ = setup
  tx = make_tx(config, PER_EPOCH, STEPS)
  return jax.jit(
    functools.partial(train_step, graphdef=graphdefs.train, tx=tx, loss_fn=make_loss(config))
  )


def test_finite_step_is_applied(setup, jit_step):
  _, _, state, batch = setup
  new, metrics = jit_step(state, batch)
  assert bool(metrics[FINITE]) and np.all(metrics[FINITE_LEAVES])
  assert metrics[FINITE_LEAVES].shape == (len(guarded_leaf_names(state)),)
  assert int(new.step) == int(state.step) + 1
  assert any(
    not np.array_equal(a, b) for a, b in zip(host_leaves(new.params), host_leaves(state.params))
  )


def test_one_nan_pixel_reaches_the_loss_and_leaves_the_state_unchanged(setup, jit_step):
  # A NaN membrane potential spikes NaN (as jnp.heaviside), and tdBN's batch statistics
  # spread it to every example: the loss is NaN, never a silent finite value.
  _, _, state, batch = setup
  image = batch["image"].copy()
  image[3, 2, 1, 0] = np.nan
  new, metrics = jit_step(state, {**batch, "image": image})
  assert not bool(metrics[FINITE]) and np.isnan(metrics["loss"])
  assert int(new.step) == int(state.step) + 1  # the batch is consumed
  for a, b in zip(host_leaves(new._replace(step=state.step)), host_leaves(state), strict=True):
    np.testing.assert_array_equal(a, b)  # params, batch statistics and optimiser state
  flags = [(7, (metrics[FINITE], metrics[FINITE_LEAVES], metrics["loss"]))]
  ((at, what),) = actions.nonfinite_steps(flags, Layout("jit"), guarded_leaf_names(state))
  assert at == 7 and what.startswith("loss nan; non-finite values in: params.classifier.")


def test_nan_loss_is_not_applied(setup, jit_step):
  _, _, state, batch = setup
  new, metrics = jit_step(state, {**batch, "image": np.full_like(batch["image"], np.nan)})
  assert not bool(metrics[FINITE]) and not np.all(metrics[FINITE_LEAVES])
  for a, b in zip(host_leaves(new.params), host_leaves(state.params), strict=True):
    np.testing.assert_array_equal(a, b)


def test_nonfinite_steps_names_the_leaves_in_order():
  names = [f"params.layer{i}.kernel" for i in range(8)]
  flags = np.ones((2, 8), bool)  # replicated over two devices
  flags[:, [2, 3, 4, 5, 6, 7]] = False
  per_step = [
    (3, (np.array([True, True]), np.ones((2, 8), bool), np.array([0.5, 0.5]))),
    (4, (np.array([False, False]), flags, np.array([0.5, 0.5]))),
  ]
  listed = ", ".join(f"params.layer{i}.kernel" for i in range(2, 7))
  assert actions.nonfinite_steps(per_step, Layout("jit"), names) == [
    (4, f"loss 0.5; non-finite values in: {listed} and 1 more")
  ]


# --- the loop ---------------------------------------------------------------------------------


def _poison(monkeypatch, steps, *, streams=None):
  """Makes the batches of training ``steps`` (1-based) NaN in the first ``streams`` streams."""
  real = input_pipeline.train_stream
  opened = []

  def stream(source, config, start: DataPosition, **options):
    opened.append(start)
    first = start.epoch * PER_EPOCH + start.batch
    for step, batch in enumerate(real(source, config, start, **options), first + 1):
      if step in steps and (streams is None or len(opened) <= streams):
        batch = {**batch, "image": np.full_like(batch["image"], np.nan)}
      yield batch

  monkeypatch.setattr(input_pipeline, "train_stream", stream)
  return opened


def _summary(workdir):
  return json.loads((workdir / "summary.json").read_text())


def _checkpoint_steps(workdir):
  return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("clean")
  return train_and_evaluate(_config(), workdir)


def test_skip_goes_on_and_reports_the_step(tmp_path, monkeypatch, caplog):
  _poison(monkeypatch, {5})
  with caplog.at_level(logging.WARNING):
    state = train_and_evaluate(_config(nonfinite="skip"), tmp_path)
  assert int(state.step) == STEPS and _summary(tmp_path)["nonfinite_steps"] == 1
  assert all(np.isfinite(x).all() for x in host_leaves(state))
  assert "step 5: loss nan; non-finite values in: params." in caplog.text
  assert "steps skipped (config.nonfinite='skip')" in caplog.text


def test_abort_stops_before_saving_past_the_bad_step(tmp_path, monkeypatch):
  _poison(monkeypatch, {5})
  with pytest.raises(
    NonFiniteError, match=r"step 5: loss nan; non-finite values in: params\..*'abort'"
  ):
    train_and_evaluate(_config(nonfinite="abort"), tmp_path)
  assert _checkpoint_steps(tmp_path) == [2, 4]


def test_rollback_over_a_transient_fault_gives_the_clean_run(
  tmp_path, monkeypatch, clean_run, capsys
):
  opened = _poison(monkeypatch, {5}, streams=1)
  state = train_and_evaluate(_config(nonfinite="rollback"), tmp_path)
  assert opened == [DataPosition(0, 0), DataPosition(1, 0)]  # replayed from checkpoint 4
  assert "rolled back to step 4" in capsys.readouterr().out
  assert _summary(tmp_path)["nonfinite_steps"] == 1
  for a, b in zip(host_leaves(clean_run), host_leaves(state), strict=True):
    np.testing.assert_array_equal(a, b)


def test_rollback_skips_a_step_that_is_non_finite_again(tmp_path, monkeypatch):
  opened = _poison(monkeypatch, {5})
  state = train_and_evaluate(_config(nonfinite="rollback"), tmp_path)
  assert len(opened) == 2 and int(state.step) == STEPS
  assert _summary(tmp_path)["nonfinite_steps"] == 2


def test_too_many_non_finite_steps_abort(tmp_path, monkeypatch):
  _poison(monkeypatch, {3, 5, 6})
  with pytest.raises(NonFiniteError, match=r"3 steps > max_nonfinite_steps=2"):
    train_and_evaluate(_config(nonfinite="skip", max_nonfinite_steps=2), tmp_path)


def test_a_state_made_non_finite_by_an_overflowing_update_is_never_saved(tmp_path):
  # Step 1 has finite gradients, but an lr beyond float32's range (a finite number, which
  # the config accepts; inf itself is refused before training) makes its update non-finite.
  with pytest.raises(NonFiniteError, match=r"state after step 2 holds non-finite values \(params"):
    train_and_evaluate(_config(learning_rate=1e300), tmp_path)
  assert _checkpoint_steps(tmp_path) == []
