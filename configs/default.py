"""Every config key, with its meaning and default; the other configs override a few.

Defaults are the GLIF paper's CIFAR recipe (Yao et al., NeurIPS 2022): ResNet-19, GLIF,
T = 4, SGD momentum 0.9, lr 0.1 cosine to 0 over 200 epochs, batch 64, weight decay 4e-5
on the weights only, neuron parameters at lr × 0.1, random crop + flip.
"""

from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
  """The default config."""
  config = config_dict.ConfigDict()

  # Data.
  # One of glif_jax.data's names (mnist, fashion_mnist, cifar10, cifar100, cifar10_dvs,
  # dvs128_gesture, imagenet, ...) or "synthetic" (class prototypes + noise, no files).
  config.dataset = "cifar10"
  config.data_dir = config_dict.placeholder(str)  # prepared data (None: glif_jax.data's default)
  config.manual_dir = config_dict.placeholder(str)  # original files (None: per data set default)
  # Event data sets only: num_frames, split_by ("number" or "time"), size (frame side).
  config.data_options = config_dict.ConfigDict()
  config.synthetic = config_dict.ConfigDict()  # used only by dataset = "synthetic"
  config.synthetic.train_size = 512
  config.synthetic.test_size = 128
  config.synthetic.image_size = 8  # H = W
  config.synthetic.channels = 1
  config.synthetic.num_classes = 4

  # Model (glif_jax.models.create).
  config.model = "resnet19"  # resnet19, resnet18, resnet18ms, resnet34ms, sew_dvs, cnn_small, mlp
  config.neuron = "glif"  # glif, glif_f, klif, lif, plif
  config.neuron_options = config_dict.ConfigDict()  # extra neuron keyword arguments
  config.width = config_dict.placeholder(int)  # base width (None: the paper's)
  config.timesteps = 4  # T
  config.remat = False  # recompute each residual block in the backward pass (less memory)
  config.dtype = "float32"  # compute dtype: float32 or bfloat16

  # Loss.
  config.loss = "ce"  # "ce": CE of the mean over T of the logits; "tet": Deng et al. 2022
  config.label_smoothing = 0.0
  config.tet_mse_weight = 0.0  # λ of TET's MSE term (0: plain TET)
  config.tet_mse_target = 1.0  # φ, the MSE term's target for every logit

  # Optimiser.
  config.optimizer = "sgd"  # sgd or adam
  config.learning_rate = 0.1  # peak learning rate, for a batch of batch_size
  config.momentum = 0.9  # SGD only
  config.weight_decay = 4e-5  # L2 on weights; never on neuron parameters
  config.neuron_lr_scale = 0.1  # neuron parameters' lr / weights' lr
  config.warmup_epochs = 0.0  # linear warm-up before the cosine decay
  config.grad_clip_norm = config_dict.placeholder(float)  # global-norm clipping (None: off)

  # Run length and batching.
  config.num_epochs = 200
  config.num_train_steps = -1  # > 0: stop after this many steps (tests, smoke runs)
  config.batch_size = 64  # global, split over the local devices
  config.eval_batch_size = 256  # global

  # Logging, checkpoints, run control.
  config.seed = 0  # model initialisation and data order
  config.log_every_steps = 100
  config.checkpoint_every_steps = 0  # > 0: also checkpoint mid-epoch (always after each epoch)
  config.max_to_keep = 3  # latest checkpoints kept; the best by eval accuracy is kept too
  config.progress_bar = True
  config.overwrite = False  # True: discard a workdir's checkpoints made with another config
  config.distributed = False  # True: call jax.distributed.initialize() (multi-host)
  return config
