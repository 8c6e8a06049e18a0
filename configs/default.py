"""Every config key, with its meaning and default; the other configs override a few.

The keys, their comments and the defaults (the GLIF paper's CIFAR recipe) live in
`glif_jax.training.config.default_config`, so the library can refuse unknown keys. The
helpers below set the keys of one recipe ingredient together.
"""

from ml_collections import config_dict

from glif_jax.training.config import default_config


def get_config() -> config_dict.ConfigDict:
  """The default config."""
  return default_config()


def set_optimizer(
  config: config_dict.ConfigDict,
  optimizer: str,
  learning_rate: float,
  *,
  weight_decay: float,
  neuron_lr_scale: float,
  gate_lr_scale: float = 1.0,
  momentum: float = 0.9,
) -> None:
  """The optimiser keys of ``config`` (``momentum``: SGD only)."""
  config.update(
    dict(
      optimizer=optimizer,
      learning_rate=learning_rate,
      weight_decay=weight_decay,
      neuron_lr_scale=neuron_lr_scale,
      gate_lr_scale=gate_lr_scale,
      momentum=momentum,
    )
  )


def set_event_frames(config: config_dict.ConfigDict, num_frames: int, size: int) -> None:
  """Event data as ``num_frames`` frames split by event number, ``size`` pixels a side; T is
  the number of frames."""
  config.data_options.update(dict(num_frames=num_frames, split_by="number", size=size))
  config.timesteps = num_frames
