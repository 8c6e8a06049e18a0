"""Trains and evaluates a spiking network from an ml_collections config.

Usage::

  python -m train.main --config configs/mnist_glif.py --workdir runs/mnist_glif \\
      [--config.num_epochs=1 --config.batch_size=128 ...]

Any config key can be overridden with ``--config.<key>=<value>``; a config file that takes
an argument is named ``configs/<file>.py:<argument>``. Rerunning with the same workdir
resumes from its latest checkpoint. SIGTERM or Ctrl-C saves a checkpoint of the current
step first; then SIGTERM exits with status 143 (128 + 15), Ctrl-C with Python's
KeyboardInterrupt. ``--config.distributed=True`` calls
`jax.distributed.initialize()` first (multi-host TPU/GPU; coordinator from the
environment, as set by the cluster or ``JAX_COORDINATOR_ADDRESS`` etc.).
"""

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from glif_jax.training import TrainingInterrupted, train_and_evaluate

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and summary.json.")
config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  if FLAGS.config.distributed:
    jax.distributed.initialize()
  try:
    train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except TrainingInterrupted as stop:
    logging.warning("%s", stop)
    sys.exit(128 + stop.signum)


if __name__ == "__main__":
  app.run(main)
