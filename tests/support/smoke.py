"""Short runs of ``configs/smoke.py`` (synthetic data) for the training tests."""

import jax

from configs import smoke
from glif_jax import data
from glif_jax.training import validate_config


def smoke_config(train_size: int, test_size: int, steps: int, **overrides):
  """``configs/smoke.py`` on ``train_size`` and ``test_size`` synthetic examples for
  ``steps`` training steps, keeping up to 10 checkpoints; ``overrides``: other top-level
  keys, set last."""
  config = smoke.get_config()
  config.synthetic.train_size, config.synthetic.test_size = train_size, test_size
  config.num_train_steps = steps
  config.max_to_keep = 10
  config.update(overrides)
  return config


def host_leaves(tree) -> list:
  """The leaves of ``tree``, copied to the host."""
  return jax.tree.leaves(jax.device_get(tree))


def checked(config):
  """``config`` checked into the `glif_jax.training.Config` that the training functions
  take, for this process's devices."""
  return validate_config(config, dataset_names=data.names(), num_devices=jax.device_count())
