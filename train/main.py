"""Trains and evaluates a spiking network from an ml_collections config.

Usage::

  python -m train.main --config configs/mnist_glif.py --workdir runs/mnist_glif \\
      [--config.num_epochs=1 --config.batch_size=128 ...]

Any config key can be overridden with ``--config.<key>=<value>``; a config file that takes
an argument is named ``configs/<file>.py:<argument>``. Rerunning with the same workdir
resumes from its latest checkpoint. SIGTERM or Ctrl-C to any process saves a checkpoint
of the current step first; then SIGTERM exits with status 143 (128 + 15), Ctrl-C with
Python's KeyboardInterrupt. A mistake of the user's (a bad or unknown config key or
value, a missing or broken config file, a workdir made with another config or not
writable, missing or corrupt data or checkpoints, a full disk) exits with status 2 and
one line saying what is wrong (``GLIF_JAX_TRACEBACK=1`` adds the traceback).

``--config.distributed=True`` calls `jax.distributed.initialize()` first: with
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` set it joins the coordinator at
``JAX_COORDINATOR_ADDRESS`` (host:port), otherwise JAX detects the cluster (SLURM, TPU
pods, Kubernetes, ...). The processes check that they run the same config; a process
that waits more than ``config.distributed_timeout`` seconds for the others to start, or
whose peer died, exits with status 3 and one line. Two processes on one machine::

  for i in 0 1; do JAX_PLATFORMS=cpu JAX_COORDINATOR_ADDRESS=127.0.0.1:12355 \\
    JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=$i python -m train.main --config configs/smoke.py \\
    --workdir runs/two --config.distributed=True & done; wait
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from glif_jax.training import TrainingInterrupted, parallel, train_and_evaluate
from train import _cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and summary.json.")
config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
  try:
    if FLAGS.config.distributed:
      parallel.initialize(FLAGS.config.distributed_timeout)
    train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except TrainingInterrupted as stop:
    logging.warning("%s", stop)
    sys.exit(128 + stop.signum)


if __name__ == "__main__":
  _cli.run(main)
