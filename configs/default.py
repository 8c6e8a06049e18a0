"""Every config key, with its meaning and default; the other configs override a few.

The keys, their comments and the defaults (the GLIF paper's CIFAR recipe) live in
`glif_jax.training.config.default_config`, so the library can refuse unknown keys.
"""

from ml_collections import config_dict

from glif_jax.training.config import default_config


def get_config() -> config_dict.ConfigDict:
  """The default config."""
  return default_config()
