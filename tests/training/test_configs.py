"""Every config file parses, validates and builds its model (abstractly: shapes only)."""

import importlib.util
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import pytest
from flax import nnx

from glif_jax import data, nn
from glif_jax.training import (
  create_model,
  default_config,
  validate_config,
  validate_input_shape,
)
from glif_jax.training.input_pipeline import augmentation, data_options, dataset_names
from tests.support.smoke import checked

CONFIG_DIR = Path(__file__).parents[2] / "configs"
CONFIG_FILES = sorted(p for p in CONFIG_DIR.glob("*.py") if p.name != "__init__.py")


def load_config(path: Path, arg: str | None = None):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


def _info(config) -> data.DatasetInfo:
  return data.info(config.dataset, **data_options(checked(config)))


def test_there_are_configs_for_the_papers():
  names = {p.stem for p in CONFIG_FILES}
  for ds in ("cifar10", "cifar100"):
    for model in ("resnet19", "resnet18"):
      assert {f"{ds}_{model}_t{t}" for t in (2, 4, 6)} <= names
  assert {"cifar10dvs_sew_t16", "imagenet_resnet18ms_t6", "imagenet_resnet34ms_t6"} <= names
  assert {"smoke", "cifar10_klif"} <= names
  assert {f"{d}_{n}" for d in ("mnist", "fmnist") for n in ("glif", "lif", "klif")} <= names


def _keys(config: ml_collections.ConfigDict, prefix: str = "") -> set[str]:
  """The dotted keys of ``config``; each free-form section (keyword arguments) is one key."""
  keys = set()
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict) and key not in FREE_FORM:
      keys |= _keys(value, f"{prefix}{key}.")
    else:
      keys.add(prefix + key)
  return keys


FREE_FORM = ("data_options", "neuron_options")
DEFAULT_KEYS = _keys(default_config())


def _key_changes(path: Path) -> tuple[list[str], list[str]]:
  """The keys the config file at ``path`` adds to the defaults', and those it drops."""
  keys = _keys(load_config(path))
  return sorted(keys - DEFAULT_KEYS), sorted(DEFAULT_KEYS - keys)


def test_the_default_keys():
  # 44 top-level keys, one of which (synthetic) is a section of 5.
  assert len(DEFAULT_KEYS) == 48 and {"batch_size", "synthetic.image_size"} <= DEFAULT_KEYS
  assert {"data_options", "neuron_options"} <= DEFAULT_KEYS


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_every_config_file_has_exactly_the_default_keys(path):
  assert _key_changes(path) == ([], [])


@pytest.mark.parametrize(
  "change, expected",
  [
    ("config.extra_steps = 3", (["extra_steps"], [])),
    ("config.synthetic.depth = 2", (["synthetic.depth"], [])),
    ("del config['warmup_epochs']", ([], ["warmup_epochs"])),
    ("del config.synthetic['channels']", ([], ["synthetic.channels"])),
  ],
  ids=["adds", "adds nested", "drops", "drops nested"],
)
def test_the_key_check_fails_for_a_file_that_adds_or_drops_a_key(tmp_path, change, expected):
  path = tmp_path / "changed.py"
  path.write_text(
    "from configs import default\n\n\ndef get_config():\n  config = default.get_config()\n"
    f"  config.unlock()\n  {change}\n  return config\n"
  )
  assert _key_changes(path) == expected


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_config_builds(path):
  # Abstractly (shapes only, no FLOPs), at the data's real input size: the models that
  # flatten their input are built for one size, and a global-pooling model must take it.
  config = load_config(path)
  validate_config(config, dataset_names=dataset_names(), num_devices=1)
  config.width = 2
  info = _info(config)
  model = nnx.eval_shape(lambda: create_model(checked(config), info))
  assert nnx.state(model, nnx.Param)
  batch = (config.timesteps, 1) if len(info.input_shape) == 4 else (1,)  # events: time-major
  x = jax.ShapeDtypeStruct((*batch, *info.input_shape[-3:]), jnp.float32)
  logits = nnx.eval_shape(lambda m, x: m(x), model, x)
  assert logits.shape == (config.timesteps, 1, info.num_classes)


@pytest.mark.parametrize(
  "key,value,message",
  [
    ("neuron", "izhikevich", "config.neuron must be one of"),
    ("model", "vgg", "config.model must be one of"),
    ("dataset", "svhn", "config.dataset must be one of"),
    ("timesteps", 0, "config.timesteps must be > 0"),
    ("batch_size", 63, "config.batch_size must be divisible by the number of devices"),
    ("optimizer", "lamb", "config.optimizer must be one of"),
    ("crop_padding", -1, "config.crop_padding must be >= 0"),
    ("norm", "layernorm", "config.norm must be one of"),
    ("cosine_period_epochs", 0.0, "config.cosine_period_epochs must be > 0"),
  ],
)
def test_bad_values_name_the_key(key, value, message):
  config = load_config(CONFIG_DIR / "smoke.py")
  config[key] = value
  with pytest.raises(ValueError, match=message):
    validate_config(config, dataset_names=dataset_names(), num_devices=2)


def test_cosine_period_and_warmup_are_not_combined():
  config = load_config(CONFIG_DIR / "cifar10dvs_sew_t16.py")
  config.warmup_epochs = 1.0
  with pytest.raises(ValueError, match="cosine_period_epochs and config.warmup_epochs"):
    validate_config(config, dataset_names=dataset_names(), num_devices=1)


def test_event_frames_must_match_timesteps():
  config = load_config(CONFIG_DIR / "cifar10dvs_sew_t16.py")
  validate_input_shape(checked(config), _info(config).input_shape)
  config.timesteps = 8
  with pytest.raises(ValueError, match="config.timesteps must equal"):
    validate_input_shape(checked(config), _info(config).input_shape)


def test_training_augmentation_is_the_configs_or_the_data_sets():
  # cifar10dvs/train.py --dsr_da: RandomCrop(48, padding=4), no flip; CIFAR: crop 4 + flip;
  # MNIST: none. A key set overrides the data set's default, None keeps it.
  dvs = load_config(CONFIG_DIR / "cifar10dvs_sew_t16.py")
  assert augmentation(checked(dvs)) == data.Augmentation(crop_padding=4, flip=False)
  cifar = load_config(CONFIG_DIR / "cifar10_resnet19_t4.py")
  assert augmentation(checked(cifar)) == data.Augmentation(crop_padding=4, flip=True)
  cifar.flip = False
  assert augmentation(checked(cifar)) == data.Augmentation(crop_padding=4, flip=False)
  mnist = load_config(CONFIG_DIR / "mnist_glif.py")
  assert augmentation(checked(mnist)) == data.Augmentation(crop_padding=0, flip=False)
  mnist.crop_padding = 2
  assert augmentation(checked(mnist)) == data.Augmentation(crop_padding=2, flip=False)


def _bn_factors(config) -> set[float]:
  """The α·V_th of every batch norm of ``config``'s model (tdBN: 0.5 or 0.5/√2; BN: 1)."""
  model = nnx.eval_shape(lambda: create_model(checked(config), _info(config)))
  return {round(m.factor, 6) for _, m in nnx.iter_modules(model) if isinstance(m, nn.TdBatchNorm)}


def test_config_norm_overrides_the_models_own():
  # MS-ResNet-18 runs with plain BN (their SyncBatchNorm), ResNet-19 with tdBN (V_th 0.5,
  # α = 1/√2 on a residual block's second BN and on the shortcut's).
  config = load_config(CONFIG_DIR / "imagenet_resnet18ms_t6.py")
  config.width = 2
  assert _bn_factors(config) == {1.0}
  config.norm = "tdbn"
  assert _bn_factors(config) == {0.5, round(0.5 / math.sqrt(2), 6)}
  config = load_config(CONFIG_DIR / "cifar10_resnet19_t4.py")
  config.width = 2
  assert _bn_factors(config) == {0.5, round(0.5 / math.sqrt(2), 6)}
  config.norm = "bn"
  assert _bn_factors(config) == {1.0}
