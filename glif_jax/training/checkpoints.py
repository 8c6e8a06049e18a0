"""Checkpoints (orbax) and the workdir's config guard.

A checkpoint holds the `TrainState` (step, params, rest, opt_state), the data position
(epoch, batch index within it), so a resumed run takes the same next batch as the
uninterrupted run, and a SHA-256 digest of the state. The manager keeps the
``max_to_keep`` latest checkpoints and the best one by eval accuracy.

Orbax writes each checkpoint into a temporary directory and renames it when complete,
so a run killed while saving leaves the previous checkpoints intact (the leftover
temporary directory is removed when the next manager opens). `restore_latest` checks
that the checkpoint fits the model, that its digest matches what was saved and that its
state and data position are of its step; a checkpoint that cannot be read or fails a check
is reported, moved to ``corrupt_checkpoints/`` and the previous one is tried.

A workdir belongs to one run: `lock_workdir` refuses a second process at once, and
`guard_workdir` a run of another config (``config.json``, written atomically).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from glif_jax.training import parallel
from glif_jax.training.config import RUN_CONTROL_KEYS, Config, ConfigError
from glif_jax.training.steps import TrainState, leaf_names, listed

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
CORRUPT_DIR = "corrupt_checkpoints"
LOCK_FILE = ".lock"  # <workdir>/.lock.<process index>, held while a run uses the workdir
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


# Keys every recorded config has held (a file without them is not one).
_RECORDED_KEYS = ("dataset", "model", "neuron", "timesteps", "batch_size", "seed")
_held_locks: dict[Path, int] = {}  # lock file -> its open descriptor, in this process


def _lock_path(workdir: Path) -> Path:
  return workdir / f"{LOCK_FILE}.{jax.process_index()}"


def _holds(path: Path) -> bool:
  """Whether this process holds the lock of ``path`` (still the same file)."""
  fd = _held_locks.get(path)
  try:
    return fd is not None and os.fstat(fd).st_ino == path.stat().st_ino
  except OSError:
    return False


def _try_lock(path: Path) -> str | None:
  """Takes the advisory lock of ``path``; None, or the holder's process id if another has it."""
  if _holds(path):
    return None
  if (stale := _held_locks.pop(path, None)) is not None:  # of a file since deleted
    os.close(stale)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
    os.close(fd)
    return holder
  os.ftruncate(fd, 0)
  os.write(fd, str(os.getpid()).encode())
  _held_locks[path] = fd
  return None


def lock_workdir(workdir: str | Path) -> None:
  """Takes ``workdir`` for this run: a second run on it is refused at once.

  Each process holds an advisory lock (`fcntl.flock`) of ``<workdir>/.lock.<process
  index>`` until `unlock_workdir` or its end (the kernel drops it with the process, so a
  killed run never blocks its rerun); the processes of one run lock different files, and
  all refuse if any of them is refused. Taking it again in the same process is a no-op.

  Raises:
    ConfigError: another process holds the workdir, or it is empty, a file or not writable.
  """
  path = _lock_path(_writable_workdir(workdir))
  holder = _try_lock(path)
  if parallel.any_process(holder is not None):
    unlock_workdir(workdir)
    who = f"process {holder} holds {path}" if holder else "another process of this run was refused"
    raise ConfigError(
      f"workdir {str(workdir)!r} is in use by another run ({who}); wait until it ends, or "
      "give another --workdir"
    )


def unlock_workdir(workdir: str | Path) -> None:
  """Gives ``workdir`` back (`lock_workdir`); nothing if this process does not hold it."""
  fd = _held_locks.pop(_lock_path(Path(workdir)), None)
  if fd is not None:
    os.close(fd)  # closing the descriptor drops the lock


def saved_steps(workdir: str | Path) -> list[int]:
  """The steps of the checkpoints saved in ``workdir`` (complete ones), ascending."""
  directory = Path(workdir) / CHECKPOINT_DIR
  names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
  return sorted(int(name) for name in names if name.isdigit())


def read_config(workdir: str | Path) -> dict[str, Any]:
  """The config recorded in ``workdir/config.json`` (`guard_workdir`), as JSON values.

  Raises:
    ConfigError: the file is missing, empty or not a JSON object (named in the message).
  """
  path = Path(workdir) / CONFIG_FILE
  try:
    text = path.read_text()
    recorded = json.loads(text) if text.strip() else None
  except FileNotFoundError:
    raise ConfigError(f"{path} is missing") from None
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
    raise ConfigError(f"{path} is unreadable or not JSON ({_brief(err)})") from None
  if recorded is None:
    raise ConfigError(f"{path} is empty (a write that failed?)")
  missing = [k for k in _RECORDED_KEYS if k not in recorded] if isinstance(recorded, dict) else []
  if not isinstance(recorded, dict) or missing:
    raise ConfigError(
      f"{path} holds no training config (no keys {missing or list(_RECORDED_KEYS)}; got "
      f"{str(recorded)[:80]!r})"
    )
  return recorded


def _recorded_config(workdir: Path, config: Config) -> dict[str, Any] | None:
  """The config ``workdir`` records, or None if none is readable and no step needs one.

  Raises:
    ConfigError: the workdir holds saved steps but no readable config.json (unless
      ``config.overwrite``): the run's identity is unknown, so new flags are not adopted.
  """
  try:
    return read_config(workdir)
  except ConfigError as err:
    if config.overwrite or not saved_steps(workdir):
      return None
    raise ConfigError(
      f"{err}, but the workdir holds checkpoints (steps {saved_steps(workdir)}): the config "
      "of its run is unknown; restore config.json, use another --workdir, or "
      "--config.overwrite=True to discard the checkpoints"
    ) from None


def _write_atomically(path: Path, text: str) -> None:
  """``path`` holds ``text`` or its previous content, never a part (a full disk, a kill)."""
  partial = path.with_name(f".{path.name}.partial")
  try:
    with open(partial, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(partial, path)
  finally:
    partial.unlink(missing_ok=True)


def what_it_computes(config: Config) -> dict[str, Any]:
  """``config`` as JSON values without its `RUN_CONTROL_KEYS`: two runs whose values are
  equal compute the same thing (a workdir refuses a config that differs)."""
  values = json.loads(json.dumps(dataclasses.asdict(config)))
  return {k: v for k, v in values.items() if k not in RUN_CONTROL_KEYS}


def guard_workdir(workdir: str | Path, config: Config) -> None:
  """Records ``config`` in ``workdir``; refuses a workdir of a run with another config.

  A workdir whose recorded config differs (run-control keys aside) and that holds a saved
  step raises ConfigError, unless ``config.overwrite`` is True: then its checkpoints are
  deleted and the run starts afresh. So does one that holds a saved step but no readable
  ``config.json`` (missing, empty or garbage): its run is unknown. A workdir without a
  saved step (e.g. of a run that failed at start) is taken over. ``config.json`` is
  written atomically. Every process checks; process 0 alone writes and deletes.

  Args:
    workdir: the run's directory (created if missing).
    config: the run's config.

  Raises:
    ConfigError: as above, or ``workdir`` is empty, not a directory or not writable.
  """
  workdir = _writable_workdir(workdir)
  new = what_it_computes(config)
  old = _recorded_config(workdir, config)
  if old is not None and old != new and not config.overwrite and saved_steps(workdir):
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    raise ConfigError(
      f"workdir {str(workdir)!r} holds a run with a different config (keys differing: "
      f"{changed}); use another --workdir, or --config.overwrite=True to discard it"
    )
  parallel.sync("guard_workdir: checked")  # before process 0 writes
  if jax.process_index() == 0:
    if old != new:
      shutil.rmtree(workdir / CHECKPOINT_DIR, ignore_errors=True)
    _write_atomically(workdir / CONFIG_FILE, json.dumps(new, indent=2, sort_keys=True))
  parallel.sync("guard_workdir: written")


def _best_metric(metrics: dict[str, float]) -> float:
  return metrics[BEST_METRIC]


def checkpoint_manager(
  workdir: str | Path, *, max_to_keep: int, read_only: bool = False
) -> ocp.CheckpointManager:
  """A manager of ``workdir/checkpoints`` keeping the latest ``max_to_keep`` and the best.

  ``read_only``: a reader's (e.g. a report beside a running training): it creates and
  cleans up nothing; save nothing with it.
  """
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
    cleanup_tmp_directories=not read_only,  # unfinished saves of a killed run
    create=not read_only,
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


def _check_position(state: TrainState, position: DataPosition, step: int, per_epoch: int) -> None:
  """Raises ValueError unless ``state`` is of ``step`` and ``position`` is where it stands."""
  saved_step = int(parallel.host(state.step))
  if saved_step != step:
    raise ValueError(f"its state is of step {saved_step}, not {step}")
  if per_epoch and position != DataPosition(*divmod(step, per_epoch)):
    raise ValueError(
      f"its data position (epoch {position.epoch}, batch {position.batch}) is not that of "
      f"step {step} at {per_epoch} steps per epoch"
    )


def _restore_step(
  manager: ocp.CheckpointManager, step: int, target: TrainState, steps_per_epoch: int
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
  position = DataPosition(**restored["position"])
  _check_position(restored["state"], position, step, steps_per_epoch)
  return restored["state"], position


def restore_step(
  manager: ocp.CheckpointManager, step: int, target: TrainState, *, steps_per_epoch: int = 0
) -> tuple[TrainState, DataPosition]:
  """Checkpoint ``step`` restored into the structure of ``target``, verified.

  The state must fit ``target``, match the SHA-256 digest saved with it and be of ``step``;
  with ``steps_per_epoch`` > 0 the data position must be that step's too.

  Returns:
    ``(state, position)``.

  Raises:
    CheckpointMismatchError: the checkpoint holds another model (the leaves are named).
    CorruptCheckpointError: it cannot be read, or does not match its digest or its step.
  """
  try:
    return _restore_step(manager, step, target, steps_per_epoch)
  except CheckpointMismatchError:
    raise
  except Exception as err:  # orbax and tensorstore raise many types
    raise CorruptCheckpointError(
      f"checkpoint step {step} in {manager.directory} is unreadable or corrupt ({_brief(err)})"
    ) from err


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
  manager: ocp.CheckpointManager, target: TrainState, *, steps_per_epoch: int = 0
) -> tuple[TrainState, DataPosition] | None:
  """The newest intact checkpoint restored into the structure of ``target``, or None if none.

  Checkpoints are tried newest first. One that cannot be read, whose arrays do not match
  the digest saved with them, or whose state or data position is not of its step (with
  ``steps_per_epoch`` > 0: the position must be ``divmod(step, steps_per_epoch)``), is
  reported (absl WARNING, naming the step and the
  problem) and moved to ``corrupt_checkpoints/`` next to the checkpoint directory, so
  the run goes on from the previous one and can save that step again.

  Args:
    manager: the run's checkpoint manager.
    target: a state of the model (its structure, shapes and dtypes are used), or
      `jax.ShapeDtypeStruct`s with the shardings to restore to.
    steps_per_epoch: the run's training steps per epoch (0: the position is not checked).

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
      restored = _restore_step(manager, step, target, steps_per_epoch)
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
