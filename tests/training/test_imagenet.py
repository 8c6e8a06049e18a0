"""The ImageNet recipe validates and runs on a tiny fake ILSVRC2012 manual directory.

The ResNet-18MS config runs; the ResNet-34MS one differs from it in depth only and is
built (abstractly) with every other config in ``test_configs.py``.

The data go through TFDS's own ``imagenet2012`` builder (4 training JPEGs of 6x9 pixels,
3 validation JPEGs of 7x5), the authors' per-record crops to 224x224 and the whole
training loop; the networks are shrunk (width 2, T = 1, batches of 2) to run in seconds.
"""

import json

import pytest

from configs import imagenet_resnet18ms_t6
from glif_jax.training import train_and_evaluate
from tests.support.files import write_ilsvrc


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("ilsvrc")
  write_ilsvrc(directory)
  return directory


def test_imagenet_config_trains_and_evaluates(manual_dir, tmp_path):
  config = imagenet_resnet18ms_t6.get_config()
  config.update(
    {
      "data_dir": str(tmp_path / "prepared"),
      "manual_dir": str(manual_dir),
      "width": 2,
      "timesteps": 1,
      "batch_size": 2,
      "eval_batch_size": 2,
      "num_train_steps": 2,
      "input_threads": 0,
      "progress_bar": False,
    }
  )
  state = train_and_evaluate(config, tmp_path / "run")
  assert int(state.step) == 2
  summary = json.loads((tmp_path / "run" / "summary.json").read_text())
  assert summary["steps"] == 2 and summary["epochs"] == 1.0  # 4 images, batches of 2
  # 3 validation images, none of the classes trained on (labels 65, 970, 230; training
  # labels 0 and 1): the accuracy is a multiple of 1/3, the loss about ln(1000) = 6.9.
  assert summary["test_accuracy"] in (0.0, 1 / 3, 2 / 3, 1.0)
  assert 1.0 < summary["test_loss"] < 20.0
  assert summary["firing_rate"]
