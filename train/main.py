"""Trains and evaluates a spiking network from an ml_collections config.

Usage::

  python -m train.main --config configs/mnist_glif.py --workdir runs/mnist_glif \\
      [--config.num_epochs=1 --config.batch_size=128 ...]

Any config key can be overridden with ``--config.<key>=<value>``; a config file that takes
an argument is named ``configs/<file>.py:<argument>``. Rerunning with the same workdir
resumes from its latest checkpoint. SIGTERM or Ctrl-C to any process saves a checkpoint
of the current step first; then SIGTERM exits with status 143 (128 + 15), Ctrl-C with
Python's KeyboardInterrupt. A mistake of the user's (a bad or unknown config key or
value, a workdir made with another config, missing or corrupt data or checkpoints)
exits with status 2 and one line saying what is wrong.

``--config.distributed=True`` calls `jax.distributed.initialize()` first: with
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` set it joins the coordinator at
``JAX_COORDINATOR_ADDRESS`` (host:port), otherwise JAX detects the cluster (SLURM, TPU
pods, Kubernetes, ...). Two processes on one machine::

  for i in 0 1; do JAX_PLATFORMS=cpu JAX_COORDINATOR_ADDRESS=127.0.0.1:12355 \\
    JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=$i python -m train.main --config configs/smoke.py \\
    --workdir runs/two --config.distributed=True & done; wait
"""

import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from glif_jax import data
from glif_jax.training import (
  CheckpointMismatchError,
  ConfigError,
  CorruptCheckpointError,
  TrainingInterrupted,
  train_and_evaluate,
)

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and summary.json.")
config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])

USER_ERRORS = (
  ConfigError,
  CheckpointMismatchError,
  CorruptCheckpointError,
  data.DatasetNotFoundError,
  data.CorruptDatasetError,
)
USER_ERROR_STATUS = 2


def _fail(message: str) -> None:
  sys.stderr.write(f"error: {message}\n")
  sys.exit(USER_ERROR_STATUS)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with a bad flag or config file reported in one line (status 2)."""
  try:
    return FLAGS(argv)
  except flags.Error as err:
    _fail(str(err))
  except (AttributeError, KeyError, TypeError, ValueError) as err:  # raised in the config file
    _fail(f"{type(err).__name__} in the config: {_message(err)}")


def _message(err: BaseException) -> str:
  """``err``'s text on one line (a KeyError's str() is a repr, and ml_collections wraps one
  in an AttributeError)."""
  while err.args and isinstance(err.args[0], BaseException):
    err = err.args[0]
  text = err.args[0] if len(err.args) == 1 and isinstance(err.args[0], str) else str(err)
  return " ".join(text.split("\n"))


def initialize_distributed() -> None:
  """`jax.distributed.initialize`, from ``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID`` if set.

  Raises:
    ConfigError: no cluster was detected and the environment does not name one.
  """
  if "JAX_NUM_PROCESSES" in os.environ and "JAX_PROCESS_ID" in os.environ:
    jax.distributed.initialize(
      coordinator_address=os.environ.get("JAX_COORDINATOR_ADDRESS"),
      num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
      process_id=int(os.environ["JAX_PROCESS_ID"]),
    )
    return
  try:
    jax.distributed.initialize()  # cluster auto-detection
  except ValueError as err:  # nothing detected: "coordinator_address should be defined"
    raise ConfigError(
      f"--config.distributed=True but no cluster was detected ({err}); set "
      "JAX_COORDINATOR_ADDRESS=<host:port>, JAX_NUM_PROCESSES and JAX_PROCESS_ID"
    ) from None


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  try:
    if FLAGS.config.distributed:
      initialize_distributed()
    train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except USER_ERRORS as err:
    _fail(str(err))
  except TrainingInterrupted as stop:
    logging.warning("%s", stop)
    sys.exit(128 + stop.signum)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
