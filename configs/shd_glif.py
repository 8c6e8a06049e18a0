"""The Spiking Heidelberg Digits with one recurrent hidden layer of 128 GLIF neurons.

The network of the SHD literature (Cramer et al. 2020, one recurrent layer of 128-256
neurons): ``srnn_sequence`` of width 128 on 100 bins of 14 ms over the first 1.4 s of
the 700 channels (`glif_jax.data.ShdConfig`), read out as the mean over time of a linear
layer. Adam 2e-3 with cosine decay, gradients clipped at norm 1, batch 128, 30 epochs.
Needs ``shd_train.h5`` and ``shd_test.h5`` in the manual directory (``--config.manual_dir``;
``glif_jax.data.default_manual_dir("shd")`` by default).
"""

from configs import default

NUM_FRAMES = 100


def get_config():
  """The config."""
  config = default.get_config()
  config.dataset = "shd"
  config.data_options.update(dict(num_frames=NUM_FRAMES, duration=1.4))
  config.model = "srnn_sequence"
  config.neuron = "glif"
  config.width = 128
  config.timesteps = NUM_FRAMES
  default.set_optimizer(
    config, "adam", 2e-3, weight_decay=0.0, neuron_lr_scale=1.0, gate_lr_scale=1.0
  )
  config.grad_clip_norm = 1.0
  config.batch_size = 128
  config.eval_batch_size = 256
  config.num_epochs = 30
  return config
