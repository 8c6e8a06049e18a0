"""Training: the pure train/eval steps, losses, optimiser, checkpoints and the loop.

Entry point: `train_and_evaluate(config, workdir)` (``python -m train.main``). What a
config builds (data, layout, model, state, compiled steps) comes from one function,
`build`, for training and evaluation alike. The steps run on a `Layout`
(``config.parallel``): sharded `jax.jit` over every device of every process, or
`jax.pmap`; the loop's periodic actions live in `glif_jax.training.actions`.
"""

from glif_jax.training.actions import NonFiniteError, TrainingInterrupted
from glif_jax.training.checkpoints import (
  CheckpointMismatchError,
  CorruptCheckpointError,
  DataPosition,
)
from glif_jax.training.config import (
  Config,
  ConfigError,
  default_config,
  recorded_config,
  validate_config,
)
from glif_jax.training.events import GATE_PREFIX, gate_history, gate_means, read_scalars
from glif_jax.training.experiment import Experiment, build, create_model, make_loss, make_tx
from glif_jax.training.input_pipeline import validate_input_shape
from glif_jax.training.losses import mean_logits_cross_entropy, tet_loss
from glif_jax.training.optim import learning_rate_schedule, make_optimizer, param_labels
from glif_jax.training.parallel import Layout
from glif_jax.training.steps import GraphDefs, TrainState, create_train_state, eval_step, train_step
from glif_jax.training.train import train_and_evaluate

__all__ = [
  "GATE_PREFIX",
  "CheckpointMismatchError",
  "Config",
  "ConfigError",
  "CorruptCheckpointError",
  "DataPosition",
  "Experiment",
  "GraphDefs",
  "Layout",
  "NonFiniteError",
  "TrainState",
  "TrainingInterrupted",
  "build",
  "create_model",
  "create_train_state",
  "default_config",
  "eval_step",
  "gate_history",
  "gate_means",
  "learning_rate_schedule",
  "make_loss",
  "make_optimizer",
  "make_tx",
  "mean_logits_cross_entropy",
  "param_labels",
  "read_scalars",
  "recorded_config",
  "tet_loss",
  "train_and_evaluate",
  "train_step",
  "validate_config",
  "validate_input_shape",
]
