"""Checkpoints (orbax) and the workdir's config guard.

A checkpoint holds the `TrainState` (step, params, rest, opt_state), the data position
(epoch, batch index within it), so a resumed run takes the same next batch as the
uninterrupted run, and a SHA-256 digest of the state. The manager keeps the
``max_to_keep`` latest checkpoints and the best one by eval accuracy.

Orbax writes each checkpoint into a temporary directory and renames it when complete,
so a run killed while saving leaves the previous checkpoints intact (the leftover
temporary directory is removed when the next manager opens). `restore_latest` checks
that the checkpoint fits the model and that its digest matches what was saved; a
checkpoint that cannot be read or fails the digest is reported, moved to
``corrupt_checkpoints/`` and the previous one is tried.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from glif_jax.training import parallel
from glif_jax.training.config import ConfigError, what_it_computes
from glif_jax.training.steps import TrainState, leaf_names, listed

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
CORRUPT_DIR = "corrupt_checkpoints"
BEST_METRIC = "eval_accuracy"
_MAX_MESSAGE = 300  # characters of an orbax/TensorStore error quoted in a warning


class CheckpointMismatchError(ValueError):
  """A checkpoint holds a state of another structure than the model's (another model/config)."""


class CorruptCheckpointError(RuntimeError):
  """No checkpoint of a directory could be read back intact."""


class DataPosition(NamedTuple):
  """Where the training data stream stands: the next batch is ``batch`` of ``epoch``."""

  epoch: int
  batch: int


def _writable_workdir(workdir: str | Path) -> Path:
  """``workdir`` as a directory this process can write to, created if missing.

  Raises:
    ConfigError: ``workdir`` is empty, a file, lies under a file, or cannot be written.
  """
  if not str(workdir):
    raise ConfigError("--workdir is empty; name a directory for the run")
  workdir = Path(workdir)
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=workdir):
      pass
  except OSError as err:
    raise ConfigError(
      f"cannot use workdir {str(workdir)!r} ({err.strerror}: {err.filename}); give a "
      "--workdir that is, or can be made, a writable directory"
    ) from None
  return workdir


def saved_steps(workdir: str | Path) -> list[int]:
  """The steps of the checkpoints saved in ``workdir`` (complete ones), ascending."""
  directory = Path(workdir) / CHECKPOINT_DIR
  names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
  return sorted(int(name) for name in names if name.isdigit())


def guard_workdir(workdir: str | Path, config: ml_collections.ConfigDict) -> None:
  """Records ``config`` in ``workdir``; refuses a workdir of a run with another config.

  A workdir whose recorded config differs (run-control keys aside) and that holds a saved
  step raises ConfigError, unless ``config.overwrite`` is True: then its checkpoints are
  deleted and the run starts afresh. A workdir without a saved step (e.g. of a run that
  failed at start) is taken over. Every process checks; process 0 alone writes and
  deletes.

  Args:
    workdir: the run's directory (created if missing).
    config: the run's config.

  Raises:
    ConfigError: as above, or ``workdir`` is empty, not a directory or not writable.
  """
  workdir = _writable_workdir(workdir)
  path = workdir / CONFIG_FILE
  new = what_it_computes(config)
  old = json.loads(path.read_text()) if path.exists() else new
  if old != new and not config.overwrite and saved_steps(workdir):
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    raise ConfigError(
      f"workdir {str(workdir)!r} holds a run with a different config (keys differing: "
      f"{changed}); use another --workdir, or --config.overwrite=True to discard it"
    )
  parallel.sync("guard_workdir: checked")  # before process 0 writes
  if jax.process_index() == 0:
    if old != new:
      shutil.rmtree(workdir / CHECKPOINT_DIR, ignore_errors=True)
    path.write_text(json.dumps(new, indent=2, sort_keys=True))
  parallel.sync("guard_workdir: written")


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
    cleanup_tmp_directories=True,  # unfinished saves of a killed run
  )
  directory = (Path(workdir) / CHECKPOINT_DIR).absolute()
  handlers = {
    "state": ocp.StandardCheckpointHandler(),
    "position": ocp.JsonCheckpointHandler(),
    "digest": ocp.JsonCheckpointHandler(),
  }
  return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


def save(
  manager: ocp.CheckpointManager,
  state: TrainState,
  position: DataPosition,
  *,
  eval_accuracy: float | None = None,
) -> None:
  """Saves ``state``, ``position`` and the state's digest at ``state.step``.

  ``state`` holds host arrays or global replicated `jax.Array`s; every process calls this,
  orbax writes each array once.
  """
  metrics = None if eval_accuracy is None else {BEST_METRIC: eval_accuracy}
  manager.save(
    int(parallel.host(state.step)),
    args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      position=ocp.args.JsonSave(position._asdict()),
      digest=ocp.args.JsonSave({"sha256": state_digest(state)}),
    ),
    metrics=metrics,
  )


def _leaf_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  """``{leaf name: (shape, dtype)}`` of arrays or orbax array metadata."""
  leaves = jax.tree.leaves(tree)
  return {
    name: (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
    for name, leaf in zip(leaf_names(tree), leaves, strict=True)
  }


def state_digest(state: TrainState) -> str:
  """SHA-256 over the names, dtypes, shapes and bytes of every leaf of ``state``."""
  digest = hashlib.sha256()
  for name, leaf in zip(leaf_names(state), jax.tree.leaves(parallel.host(state)), strict=True):
    array = np.ascontiguousarray(leaf)
    digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
    digest.update(array.reshape(-1).view(np.uint8).data)
  return digest.hexdigest()


def _check_structure(saved: Any, target: TrainState, where: str) -> None:
  """Raises `CheckpointMismatchError` naming the leaves where ``saved`` and ``target`` differ."""
  old, new = _leaf_specs(saved), _leaf_specs(target)
  problems = [  # in the model's leaf order: params before the optimiser state
    f"{k}: checkpoint {old[k][0]} {old[k][1]}, model {v[0]} {v[1]}"
    for k, v in new.items()
    if k in old and old[k] != v
  ]
  problems += [f"{k}: only in the model" for k in new if k not in old]
  problems += [f"{k}: only in the checkpoint" for k in sorted(old.keys() - new.keys())]
  if problems:
    raise CheckpointMismatchError(
      f"{where} holds a state that does not fit this model and config ({len(problems)} "
      f"leaves differ: {listed(problems, '; ')}); was it made with another model or "
      "config? Use another --workdir for a different model"
    )


def _restore_step(
  manager: ocp.CheckpointManager, step: int, target: TrainState
) -> tuple[TrainState, DataPosition]:
  """Restores and verifies checkpoint ``step``; raises if it is unreadable or altered."""
  saved = manager.item_metadata(step).state
  if saved is None:
    raise ValueError("it has no readable state item")
  _check_structure(saved, target, f"checkpoint step {step} in {manager.directory}")
  restored = manager.restore(
    step,
    args=ocp.args.Composite(
      state=ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, target)),
      position=ocp.args.JsonRestore(),
      digest=ocp.args.JsonRestore(),
    ),
  )
  if state_digest(restored["state"]) != restored["digest"]["sha256"]:
    raise ValueError("its arrays differ from those saved (SHA-256 digest mismatch)")
  return restored["state"], DataPosition(**restored["position"])


def _brief(err: Exception) -> str:
  """The error's type and the first line of its message (TensorStore's run to pages)."""
  lines = str(err).strip().splitlines() or [""]
  return f"{type(err).__name__}: {lines[0][:_MAX_MESSAGE]}"


def _quarantine(manager: ocp.CheckpointManager, step: int) -> Path:
  """Moves checkpoint ``step`` out of the manager's directory, next to it; returns where.

  Process 0 moves it; every process gets the same target (named by the step's time).
  """
  source = Path(manager.directory) / str(step)
  stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(source.stat().st_mtime))
  target = source.parent.parent / CORRUPT_DIR / f"{step}-{stamp}"
  parallel.sync(f"quarantine {step}: found")
  if jax.process_index() == 0:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)
  parallel.sync(f"quarantine {step}: moved")
  return target


def restore_latest(
  manager: ocp.CheckpointManager, target: TrainState
) -> tuple[TrainState, DataPosition] | None:
  """The newest intact checkpoint restored into the structure of ``target``, or None if none.

  Checkpoints are tried newest first. One that cannot be read, or whose arrays do not
  match the digest saved with them, is reported (absl WARNING, naming the step and the
  problem) and moved to ``corrupt_checkpoints/`` next to the checkpoint directory, so
  the run goes on from the previous one and can save that step again.

  Args:
    manager: the run's checkpoint manager.
    target: a state of the model (its structure, shapes and dtypes are used), or
      `jax.ShapeDtypeStruct`s with the shardings to restore to.

  Returns:
    ``(state, position)``, or None if the directory holds no checkpoint.

  Raises:
    CheckpointMismatchError: a checkpoint's structure, shapes or dtypes differ from
      ``target``'s (another model or config); the message names the leaves.
    CorruptCheckpointError: there are checkpoints but none is intact (nothing is moved;
      the message lists each step's problem).
  """
  manager.wait_until_finished()  # a save in flight is complete first
  failures: list[tuple[int, Exception]] = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = _restore_step(manager, step, target)
    except CheckpointMismatchError:
      raise
    except Exception as err:  # noqa: BLE001 -- orbax and tensorstore raise many types
      failures.append((step, err))
      logging.warning(
        "checkpoint step %d in %s is unreadable or corrupt (%s); trying the previous one",
        step,
        manager.directory,
        _brief(err),
      )
      continue
    for bad, _ in failures:
      logging.warning("moved corrupt checkpoint step %d to %s", bad, _quarantine(manager, bad))
    manager.reload()
    return restored
  if failures:
    listed = "; ".join(f"step {s}: {_brief(e)}" for s, e in failures)
    raise CorruptCheckpointError(
      f"no checkpoint in {manager.directory} could be restored ({listed}); move that "
      "directory away to start afresh"
    )
  return None


def best_accuracy(manager: ocp.CheckpointManager) -> float | None:
  """The highest eval accuracy among the kept checkpoints (None if none has one)."""
  step = manager.best_step()
  metrics = None if step is None else manager.metrics(step)
  return _best_metric(metrics) if metrics else None
