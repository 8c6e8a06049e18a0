"""End to end: a real train_and_evaluate, exact resume, the gates logged from step 0."""

import functools
import json
import math
import shutil

import jax
import numpy as np
import pytest

from glif_jax.training import (
  DataPosition,
  create_train_state,
  input_pipeline,
  read_scalars,
  train_and_evaluate,
  train_step,
)
from glif_jax.training.experiment import create_model, make_loss, make_tx
from tests.support.smoke import checked, host_leaves, smoke_config

STEPS, CHECKPOINT_AT = 10, 5  # 4 steps per epoch: eval at 4, 8, 10; checkpoints at 5, 10 too


# test_size 40: not a multiple of the eval batch (padding and mask)
_config = functools.partial(smoke_config, 128, 40, STEPS, checkpoint_every_steps=CHECKPOINT_AT)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("full")
  return workdir, train_and_evaluate(_config(), workdir)


def test_train_and_evaluate_ends_with_metrics_checkpoints_and_summary(full_run):
  workdir, state = full_run
  assert int(state.step) == STEPS
  summary = json.loads((workdir / "summary.json").read_text())
  assert 0.0 <= summary["test_accuracy"] <= 1.0 and math.isfinite(summary["test_loss"])
  assert summary["best_accuracy"] >= summary["test_accuracy"]
  assert summary["firing_rate"] and all(0.0 <= r <= 1.0 for r in summary["firing_rate"].values())
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert {CHECKPOINT_AT, STEPS} <= set(steps)
  assert all(np.isfinite(x).all() for x in host_leaves(state))


def test_resume_matches_uninterrupted_run(full_run, tmp_path):
  workdir, final = full_run
  resumed_dir = tmp_path / "resumed"
  shutil.copytree(workdir, resumed_dir)
  (resumed_dir / "summary.json").unlink()
  for p in (resumed_dir / "checkpoints").iterdir():
    if p.name.isdigit() and int(p.name) > CHECKPOINT_AT:
      shutil.rmtree(p)
  state = train_and_evaluate(_config(), resumed_dir)
  assert int(state.step) == STEPS
  for a, b in zip(host_leaves(final), host_leaves(state), strict=True):
    np.testing.assert_array_equal(a, b)


def test_resumed_data_stream_is_the_uninterrupted_one():
  config = checked(_config())
  source = input_pipeline.load(config)[0]["train"]
  per_epoch = input_pipeline.steps_per_epoch(source, config)
  full = input_pipeline.train_stream(source, config, DataPosition(0, 0))
  labels = [next(full)["label"] for _ in range(STEPS)]
  start = DataPosition(*divmod(CHECKPOINT_AT, per_epoch))
  resumed = input_pipeline.train_stream(source, config, start)
  for expected in labels[CHECKPOINT_AT:]:
    np.testing.assert_array_equal(next(resumed)["label"], expected)


def test_workdir_with_another_config_is_refused(full_run):
  workdir, _ = full_run
  with pytest.raises(ValueError, match="different config.*learning_rate"):
    train_and_evaluate(_config(learning_rate=0.5), workdir)


def test_log_records_the_gates_of_every_glif_layer_from_step_0(full_run):
  workdir, state = full_run
  gates = read_scalars(workdir, "gate/")
  layers = {tag.rsplit("/", 1)[0] for tag in gates}
  assert layers == {"gate/stem_neuron", "gate/conv/neuron"}
  for points in gates.values():
    assert [step for step, _ in points] == [0, 4, 8, 10]  # log_every_steps=4 and the last
    assert all(0.0 < value < 1.0 for _, value in points)
  layer, gate = "stem_neuron", "alpha"
  raw = np.asarray(state.params[layer][gate][...])
  assert gates[f"gate/{layer}/{gate}"][-1][1] == pytest.approx(np.mean(1 / (1 + np.exp(-raw))))


def test_bfloat16_step_is_finite():
  config = checked(_config(dtype="bfloat16"))
  splits, info = input_pipeline.load(config)
  tx = make_tx(config, steps_per_epoch=4, total_steps=STEPS)
  graphdefs, state = create_train_state(create_model(config, info, bn_axis_name=None), tx)
  step = jax.jit(
    functools.partial(train_step, graphdef=graphdefs.train, tx=tx, loss_fn=make_loss(config))
  )
  batch = next(input_pipeline.batches(splits["train"], config, train=True))
  state, metrics = step(state, batch)
  assert np.isfinite(float(metrics["loss"])) and 0.0 <= float(metrics["accuracy"]) <= 1.0
  assert all(np.isfinite(x).all() for x in host_leaves(state.params))
