"""Checkpoints (orbax) and the workdir's config guard.

A checkpoint holds the `TrainState` (step, params, rest, opt_state) and the data
position (epoch, batch index within it), so a resumed run takes the same next batch as
the uninterrupted run. The manager keeps the ``max_to_keep`` latest checkpoints and the
best one by eval accuracy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import jax
import ml_collections
import orbax.checkpoint as ocp

from glif_jax.training.steps import TrainState

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
BEST_METRIC = "eval_accuracy"
# Keys that change how a run is driven, not what it computes.
_RUN_CONTROL_KEYS = (
  "overwrite",
  "distributed",
  "progress_bar",
  "log_every_steps",
  "checkpoint_every_steps",
  "max_to_keep",
)


class DataPosition(NamedTuple):
  """Where the training data stream stands: the next batch is ``batch`` of ``epoch``."""

  epoch: int
  batch: int


def _comparable(config: ml_collections.ConfigDict) -> dict[str, Any]:
  values = json.loads(config.to_json_best_effort())
  return {k: v for k, v in values.items() if k not in _RUN_CONTROL_KEYS}


def guard_workdir(workdir: str | Path, config: ml_collections.ConfigDict) -> None:
  """Records ``config`` in ``workdir``; refuses a workdir made with another config.

  A workdir whose recorded config differs (run-control keys aside) raises ValueError,
  unless ``config.overwrite`` is True: then its checkpoints are deleted and the run
  starts afresh.

  Args:
    workdir: the run's directory (created if missing).
    config: the run's config.
  """
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  path = workdir / CONFIG_FILE
  new = _comparable(config)
  if path.exists():
    old = json.loads(path.read_text())
    if old != new:
      if not config.overwrite:
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        raise ValueError(
          f"workdir {str(workdir)!r} holds a run with a different config (keys differing: "
          f"{changed}); use another --workdir, or --config.overwrite=True to discard it"
        )
      shutil.rmtree(workdir / CHECKPOINT_DIR, ignore_errors=True)
  path.write_text(json.dumps(new, indent=2, sort_keys=True))


def _best_metric(metrics: dict[str, float]) -> float:
  return metrics[BEST_METRIC]


def checkpoint_manager(workdir: str | Path, *, max_to_keep: int) -> ocp.CheckpointManager:
  """A manager of ``workdir/checkpoints`` keeping the latest ``max_to_keep`` and the best."""
  policy = ocp.checkpoint_managers
  options = ocp.CheckpointManagerOptions(
    best_fn=_best_metric,  # makes the manager record metrics; best_step() uses it
    best_mode="max",
    preservation_policy=policy.AnyPreservationPolicy(
      [
        policy.LatestN(n=max_to_keep),
        policy.BestN(get_metric_fn=_best_metric, n=1, keep_checkpoints_without_metrics=False),
      ]
    ),
  )
  directory = (Path(workdir) / CHECKPOINT_DIR).absolute()
  return ocp.CheckpointManager(directory, options=options)


def save(
  manager: ocp.CheckpointManager,
  state: TrainState,
  position: DataPosition,
  *,
  eval_accuracy: float | None = None,
) -> None:
  """Saves a host-side ``state`` and ``position`` at ``state.step``."""
  metrics = None if eval_accuracy is None else {BEST_METRIC: eval_accuracy}
  manager.save(
    int(state.step),
    args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      position=ocp.args.JsonSave(position._asdict()),
    ),
    metrics=metrics,
  )


def restore_latest(
  manager: ocp.CheckpointManager, target: TrainState
) -> tuple[TrainState, DataPosition] | None:
  """The latest checkpoint restored into the structure of ``target``, or None if none."""
  step = manager.latest_step()
  if step is None:
    return None
  restored = manager.restore(
    step,
    args=ocp.args.Composite(
      state=ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, target)),
      position=ocp.args.JsonRestore(),
    ),
  )
  return restored.state, DataPosition(**restored.position)


def best_accuracy(manager: ocp.CheckpointManager) -> float | None:
  """The highest eval accuracy among the kept checkpoints (None if none has one)."""
  step = manager.best_step()
  metrics = None if step is None else manager.metrics(step)
  return _best_metric(metrics) if metrics else None
