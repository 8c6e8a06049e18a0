"""SEW-ResNet's DVS128 Gesture run (Fang et al. 2021): ``SEWResNet`` (ADD) with PLIF, T = 16.

The SEW authors' command (``fangwei123456/Spike-Element-Wise-ResNet``, ``dvsgesture``)::

    train.py --amp --model SEWResNet --connect_f ADD --lr-step-size 64 --epoch 192
             --T_train 12 --T 16 --lr 0.001

with its defaults: SGD momentum 0.9, batch 16, no weight decay, StepLR ×0.1 every 64
epochs; SpikingJelly's 16 frames split by event number at 128×128, no augmentation. The
model is theirs: conv1x1 2→32 + BN + PLIF, seven SEW blocks of 32 each followed by 2×2
max pooling, FC 32 → 11; PLIF with τ₀ = 2, detached reset, ATan surrogate.

Not expressible in the config (README "Where we differ"): the step schedule (here cosine
to 0 over the 192 epochs), training on 12 random frames of the 16 (``--T_train``), AMP.
"""

from configs import default

TIMESTEPS = 16


def get_config():
  """The config."""
  config = default.get_config()
  config.dataset = "dvs128_gesture"
  default.set_event_frames(config, TIMESTEPS, size=128)
  config.model = "sew_gesture"
  config.neuron = "plif"
  default.set_optimizer(config, "sgd", 0.001, weight_decay=0.0, neuron_lr_scale=1.0)
  config.batch_size = 16
  config.eval_batch_size = 16
  config.num_epochs = 192
  return config
