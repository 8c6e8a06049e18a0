"""A few steps of a tiny network on synthetic data: for tests and a quick check."""

from configs import default


def get_config():
  """The smoke-test config."""
  config = default.get_config()
  config.dataset = "synthetic"
  config.model = "cnn_small"
  config.width = 4
  config.timesteps = 2
  config.optimizer = "adam"
  config.learning_rate = 1e-2
  config.batch_size = 32
  config.eval_batch_size = 64
  config.num_epochs = 2
  config.log_every_steps = 4
  config.progress_bar = False
  return config
