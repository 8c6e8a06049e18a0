"""GLIF paper: the 7-block wide SEW net (``SEWResNet_GLIF_dsr``) on CIFAR10-DVS, T = 16.

The authors' README command (``Ikarosy/Gated-LIF`` at ac20aa7)::

    cifar10dvs/train.py --dsr_da -amp -model SEWResNet_GLIF_dsr -cnf ADD -epochs 200
                        -T_max 64 -T 16 -lr 0.01 -b 32

with ``cifar10dvs/train.py``'s defaults: SGD momentum 0.9 over all parameters in one group
(no weight decay, the neuron parameters at the same lr), cross-entropy. Frames: SpikingJelly's
16 frames split by event number at 128×128, bilinearly resized to 48×48 (``--dsr_da``);
training crop: ``RandomCrop(48, padding=4)`` of the frame tensor (one offset for all 16
frames), no flip. The model brings their DVS neuron (V_th 0.99999, τ 0.5, conductance 0.9,
leak V_th/32, random gates) and BatchNorm2d.

Their ``CosineAnnealingLR(T_max=64)``, stepped once per epoch, runs for 200 epochs: it
reaches 0 at epoch 64 and rises again (``cosine_period_epochs = 64`` does the same). Not
expressible in the config (README "Where we differ"): AMP.
"""

from configs import default

TIMESTEPS = 16


def get_config():
  """The config."""
  config = default.get_config()
  config.dataset = "cifar10_dvs"
  default.set_event_frames(config, TIMESTEPS, size=48)
  config.crop_padding = 4
  config.flip = False
  config.model = "sew_dvs"
  config.neuron = "glif"
  default.set_optimizer(config, "sgd", 0.01, weight_decay=0.0, neuron_lr_scale=1.0)
  config.batch_size = 32
  config.eval_batch_size = 32
  config.num_epochs = 200
  config.cosine_period_epochs = 64.0
  return config
