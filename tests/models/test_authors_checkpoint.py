"""The authors' checkpoints in glif-jax models (`glif_jax.models.authors`), and
``train.evaluate`` and ``train.analyze`` of one.

The checkpoint fixtures (`tests.support.shared_checkpoints`) were made with the GLIF
authors' PyTorch classes; their ``.npz`` holds the inputs, logits and per-layer spike rates
their model computed, so the comparisons below check every layer of the mapping. The
PyTorch-free reader of their files is tested in `test_torch_zip.py`.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from glif_jax import analysis, models
from glif_jax.models._torch_zip import load_torch_zip
from glif_jax.models.authors import AuthorsCheckpointError, load_authors_state_dict
from tests.support import files
from tests.support.shared_checkpoints import RESNET19, SEW_DVS, SHARED, needs_shared
from tests.support.torch_zip import Storage, Tensor, fake_torch, write_torch_zip

REPO = Path(__file__).resolve().parents[2]


# --- the authors' networks in glif-jax ---

RATE_TOL = 5e-3  # their README: two correct implementations differ by ~1e-3
LOGIT_TOL = 0.2  # ... and by up to ~0.05 in the logits (spikes near threshold flip)


def _rates_and_logits(model, x):
  model.eval()
  rates = analysis.network_statistics(model, x).layer_rates
  logits = model(x)  # eager: cheaper than compiling the unrolled network a second time
  return np.array(list(rates.values())), np.asarray(logits).mean(axis=0)


@needs_shared
def test_resnet19_checkpoint_rates_and_logits_match_theirs():
  ref = np.load(SHARED / "resnet19_cifar10_t4.npz")
  model = models.create("resnet19", num_classes=10, timesteps=4, in_channels=3, rngs=nnx.Rngs(0))
  assert models.load_authors_checkpoint(model, RESNET19) == {}
  x = jnp.asarray(ref["images_nchw"].transpose(0, 2, 3, 1))  # NCHW -> NHWC
  rates, logits = _rates_and_logits(model, x)
  assert rates.shape == ref["layer_rates"].shape == (17,)  # stem + 8 blocks × 2
  np.testing.assert_allclose(rates, ref["layer_rates"], atol=RATE_TOL)
  np.testing.assert_allclose(logits, ref["logits"], atol=LOGIT_TOL)


@needs_shared
def test_sew_dvs_checkpoint_rates_and_logits_match_theirs():
  ref = np.load(SHARED / "sew_dvs_cifar10dvs_t16.npz")
  model = models.create("sew_dvs", num_classes=10, timesteps=16, in_channels=2, rngs=nnx.Rngs(0))
  rest = models.load_authors_checkpoint(model, SEW_DVS)
  assert (rest["epoch"], rest["max_test_acc"]) == (199, 0.781)
  x = jnp.asarray(ref["frames_ntchw"].transpose(1, 0, 3, 4, 2))  # NTCHW -> TNHWC
  rates, logits = _rates_and_logits(model, x)
  assert rates.shape == ref["layer_rates"].shape == (16,)  # stem, 7 blocks × 2, up-projection
  np.testing.assert_allclose(rates, ref["layer_rates"], atol=RATE_TOL)
  np.testing.assert_allclose(logits, ref["logits"], atol=LOGIT_TOL)


@pytest.fixture(scope="module")
def resnet19_state():
  if not SHARED.is_dir():
    pytest.skip(f"the authors' checkpoints are not here: {SHARED} is absent")
  return load_torch_zip(RESNET19)["state_dict"]


def _resnet19(**kwargs):
  options = {"num_classes": 10, "timesteps": 4, "in_channels": 3, "rngs": nnx.Rngs(0), **kwargs}
  return models.create("resnet19", **options)


def test_every_tensor_lands_in_its_layout(resnet19_state):
  model = _resnet19()
  load_authors_state_dict(model, resnet19_state)  # DDP's "module." prefix is dropped
  sd = resnet19_state
  conv = sd["module.features.3.body.0.0.weight"]  # [256, 128, 3, 3] OIHW
  kernel = np.asarray(model.blocks[3].conv1.conv_norm.conv.kernel[...])  # HWIO
  assert kernel[2, 0, 5, 7] == conv[7, 5, 2, 0]
  fc = sd["module.lastave.0.weight"]  # [256, 512]
  assert np.asarray(model.classifier.fcs[0].kernel[...])[11, 3] == fc[3, 11]
  norm = model.blocks[0].shortcut  # their identity branch's tdBN
  np.testing.assert_array_equal(
    norm.norm.var[...], sd["module.features.0.downsample.0.running_var"]
  )
  np.testing.assert_array_equal(norm.scale[...], sd["module.features.0.downsample.0.weight"])
  neuron = model.blocks[7].neuron2
  np.testing.assert_array_equal(neuron.conduct[...], sd["module.features.7.lif.conduct"])
  np.testing.assert_array_equal(neuron.v_reset[...], sd["module.features.7.lif.reVth"])


def test_mismatches_name_the_key_and_both_shapes_and_change_nothing(resnet19_state):
  model = _resnet19(timesteps=2)
  before = np.asarray(model.stem.layer.conv.kernel[...])
  with pytest.raises(AuthorsCheckpointError) as err:
    load_authors_state_dict(model, resnet19_state)
  assert "features.0.lif.conduct: expected shape (2, 128)" in str(err.value)
  assert "got (4, 128)" in str(err.value)
  np.testing.assert_array_equal(model.stem.layer.conv.kernel[...], before)

  with pytest.raises(AuthorsCheckpointError) as err:
    load_authors_state_dict(_resnet19(num_classes=100), resnet19_state)
  assert "lastave.0.weight: expected shape (100, 512)" in str(err.value)  # one FC for 100
  assert "lastave.1.weight: maps to classifier.fcs.1, which SpikingResNet does not have" in str(
    err.value
  )


def test_unused_keys_and_missing_parameters_are_errors(resnet19_state):
  state = dict(resnet19_state)
  del state["module.features.0.lif.conduct"]
  state["module.features.0.extra.weight"] = np.zeros(3, np.float32)
  with pytest.raises(AuthorsCheckpointError) as err:
    load_authors_state_dict(_resnet19(), state)
  assert "features.0.extra.weight: no SpikingResNet layer corresponds to it" in str(err.value)
  assert "blocks.0.neuron2.conduct (4, 128): not in the checkpoint" in str(err.value)


@needs_shared
def test_tdbn_against_plain_bn_is_an_error(resnet19_state):
  with pytest.raises(
    AuthorsCheckpointError, match=r"conv1\.0\.1\.Vth = 0\.5: a tdBN, but .* by 1\.0"
  ):
    load_authors_state_dict(_resnet19(norm="bn"), resnet19_state)
  sew = models.create(
    "sew_dvs", num_classes=10, timesteps=16, in_channels=2, norm="tdbn", rngs=nnx.Rngs(0)
  )
  with pytest.raises(
    AuthorsCheckpointError, match=r"conv\.0\.0\.1: a plain BatchNorm2d .* by 0\.5"
  ):
    load_authors_state_dict(sew, load_torch_zip(SEW_DVS)["net"])


def test_a_model_without_a_mapping_is_refused(resnet19_state):
  model = models.create("mlp", num_classes=10, timesteps=2, in_channels=1, rngs=nnx.Rngs(0))
  with pytest.raises(AuthorsCheckpointError, match="no mapping .* onto a SpikingMLP"):
    load_authors_state_dict(model, resnet19_state)


# --- python -m train.evaluate ---


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
  """``train.evaluate`` of the shared ResNet-19 on 3 fake CIFAR-10 test images, with a workdir."""
  if not SHARED.is_dir():
    pytest.skip(f"the authors' checkpoints are not here: {SHARED} is absent")
  from configs import cifar10_resnet19_t4
  from train import evaluate

  tmp = tmp_path_factory.mktemp("evaluate")
  files.write_cifar(tmp / "manual", "cifar10")  # 3 test images
  config = cifar10_resnet19_t4.get_config()
  config.data_dir, config.manual_dir = str(tmp / "tfds"), str(tmp / "manual")
  config.batch_size, config.eval_batch_size, config.input_threads = 2, 3, 0
  workdir = tmp / "run"
  summary = evaluate.evaluate_authors_checkpoint(config, RESNET19, workdir, energy_examples=2)
  return summary, workdir


def test_evaluate_reports_accuracy_rates_and_energy_in_a_training_summary(evaluated):
  summary, workdir = evaluated
  rates, energy = summary["firing_rate"], summary["energy"]
  assert list(rates)[:3] == ["stem_neuron", "blocks.0.conv1.neuron", "blocks.0.neuron2"]
  assert len(rates) == 17 and all(0 < r < 1 for r in rates.values())
  assert energy["examples"] == 2 and 0 < energy["snn_energy_uj"] < energy["ann_energy_uj"]
  saved = json.loads((workdir / "summary.json").read_text())
  assert saved["test_accuracy"] == summary["test_accuracy"] in (0, 1 / 3, 2 / 3, 1)
  assert saved["steps"] == 0 and saved["authors_checkpoint"] == str(RESNET19.absolute())
  assert (workdir / "config.json").exists() and (workdir / "checkpoints" / "0").is_dir()


@pytest.mark.slow
def test_analyze_reports_on_an_evaluate_workdir(evaluated, tmp_path):
  summary, workdir = evaluated
  command = ["-m", "train.analyze", f"--workdir={workdir}", f"--out={tmp_path}", "--batch_size=3"]
  run = subprocess.run(
    [sys.executable, *command], check=False, cwd=REPO, capture_output=True, text=True
  )
  assert run.returncode == 0, run.stderr[-3000:]
  report = (tmp_path / "report.md").read_text()
  assert f"accuracy on them {summary['test_accuracy']:.4f}" in report
  assert "Training summary (`summary.json`)" in report
  # analyze's statistics of the same 3 images: the rates of evaluate's test loop.
  table = dict(re.findall(r"^\| `([\w/]+)` \| ([\d.]+) \|", report, flags=re.MULTILINE))
  assert {k.replace("/", "."): float(v) for k, v in table.items()} == pytest.approx(
    {k: round(v, 4) for k, v in summary["firing_rate"].items()}, abs=1.5e-4
  )


def their_resnet_state(
  depths, strides, width, num_classes, timesteps, *, ms=False, stem_kernel=3, tdbn=True
) -> dict[str, np.ndarray]:
  """A state dict named and shaped as their classes write it (``networks_for_CIFAR.py``,
  ``networks_for_ImageNet.py``, ``blocks.py``), with stem width ``width`` and stage i of
  width·2^i channels; tdBN with its ``Vth`` buffer, or plain (Sync)BatchNorm without."""
  shapes: dict[str, tuple[int, ...]] = {}

  def conv(key, cout, cin, k):
    shapes[f"{key}.weight"] = (cout, cin, k, k)

  def norm(key, c):
    shapes.update({f"{key}.{p}": (c,) for p in ("weight", "bias", "running_mean", "running_var")})
    shapes[f"{key}.num_batches_tracked"] = ()
    if tdbn:
      shapes[f"{key}.Vth"] = ()

  def lif(key, c):
    shapes.update({f"{key}.{p}": (c,) for p in ("alpha", "beta", "gamma", "tau", "Vth", "leak")})
    shapes.update({f"{key}.reVth": (c,), f"{key}.conduct": (timesteps, c)})

  conv("conv1.0.0", width, 3, stem_kernel)
  norm("conv1.0.1", width)
  lif("conv1.1", width)
  cin, index = width, 0
  for stage, (depth, first_stride) in enumerate(zip(depths, strides)):
    cout = width * 2**stage
    for j in range(depth):
      block = f"features.{index}"
      if ms:  # BasicBlock_CW_MS: neuron, conv-BN, neuron, conv-BN
        lif(f"{block}.body.0", cin)
        body = ((1, cin), (3, cout))
        lif(f"{block}.body.2", cout)
      else:  # BasicBlock_CW: conv-BN, neuron, conv-BN ... neuron `lif`
        body = ((0, cin), (2, cout))
        lif(f"{block}.body.1", cout)
        lif(f"{block}.lif", cout)
      for position, c in body:
        conv(f"{block}.body.{position}.0", cout, c, 3)
        norm(f"{block}.body.{position}.1", cout)
      if cin == cout and (j > 0 or first_stride == 1):
        norm(f"{block}.downsample.0", cout)
      else:
        conv(f"{block}.downsample.0.0", cout, cin, 1)
        norm(f"{block}.downsample.0.1", cout)
      cin, index = cout, index + 1
  head = (cin, 256, num_classes) if num_classes <= 50 else (cin, num_classes)
  shapes.update(
    {f"lastave.{i}.weight": (b, a) for i, (a, b) in enumerate(itertools.pairwise(head))}
  )
  return {k: np.zeros(v, np.float32) for k, v in shapes.items()}


@needs_shared
def test_their_resnet_state_generator_matches_the_shared_checkpoint(resnet19_state):
  theirs = their_resnet_state((3, 3, 2), (1, 2, 2), 128, 10, 4)
  shared = {k.removeprefix("module."): v.shape for k, v in resnet19_state.items()}
  assert {k: v.shape for k, v in theirs.items()} == shared


@pytest.mark.parametrize(
  "name, classes, depths, strides, ms, norm",
  [
    ("resnet19", 100, (3, 3, 2), (1, 2, 2), False, "tdbn"),  # CIFAR-100: one FC head
    ("resnet18", 10, (2, 2, 2, 2), (1, 1, 2, 2), False, "tdbn"),
    ("resnet18", 100, (2, 2, 2, 2), (1, 1, 2, 2), False, "tdbn"),
    ("resnet18ms", 1000, (2, 2, 2, 2), (2, 2, 2, 2), True, "bn"),  # SyncBatchNorm: no Vth
    ("resnet34ms", 1000, (3, 4, 6, 3), (2, 2, 2, 2), True, "tdbn"),
  ],
)
def test_every_paper_resnet_takes_their_state_dict(name, classes, depths, strides, ms, norm):
  width, timesteps = 4, 2
  model = models.create(
    name, num_classes=classes, timesteps=timesteps, in_channels=3, width=width, norm=norm,
    rngs=nnx.Rngs(0),
  )  # fmt: skip
  theirs = their_resnet_state(
    depths, strides, width, classes, timesteps, ms=ms, stem_kernel=7 if ms else 3,
    tdbn=norm == "tdbn",
  )  # fmt: skip
  # Distinct values, but tdBN's V_th (a scalar buffer) is theirs: 0.5.
  theirs = {
    k: np.full(v.shape, 0.5 if k.endswith("Vth") and not v.shape else i, np.float32)
    for i, (k, v) in enumerate(theirs.items())
  }
  load_authors_state_dict(model, theirs)  # every key used, every parameter written
  kernel = np.asarray(model.blocks[-1].conv2.conv.kernel[...])
  assert (
    kernel.flat[0] == theirs[f"features.{sum(depths) - 1}.body.{3 if ms else 2}.0.weight"].flat[0]
  )


# --- non-finite weights ---


def _write_state(path: Path, state: dict[str, np.ndarray]) -> None:
  """``{'state_dict': state}`` as ``torch.save`` writes it, each array a float32 storage."""
  tensors = {
    key: Tensor(
      Storage(str(i), x.ravel(), "FloatStorage"), 0, x.shape, tuple(s // 4 for s in x.strides)
    )
    for i, (key, x) in enumerate(state.items())
  }
  write_torch_zip(path, {"state_dict": tensors})


def _small_resnet19(norm="tdbn"):
  return _resnet19(timesteps=2, width=4, norm=norm)


def _small_state(**values) -> dict[str, np.ndarray]:
  """Their ResNet-19 state for `_small_resnet19`: distinct values, tdBN V_th 0.5; ``values``
  override keys (dots written as ``__``) with a constant."""
  theirs = their_resnet_state((3, 3, 2), (1, 2, 2), 4, 10, 2)
  state = {
    k: np.full(v.shape, 0.5 if k.endswith("Vth") and not v.shape else i % 7, np.float32)
    for i, (k, v) in enumerate(theirs.items())
  }
  for key, value in values.items():
    key = key.replace("__", ".")
    state[key] = np.full(state[key].shape, value, np.float32)
  return state


def _leaves(model) -> list[np.ndarray]:
  return [np.array(x) for x in jax.tree.leaves(nnx.state(model))]


def _assert_unchanged(model, before) -> None:
  after = _leaves(model)
  assert len(after) == len(before)
  for a, b in zip(after, before):
    np.testing.assert_array_equal(a, b)  # NaN == NaN here


def test_nonfinite_weights_and_negative_variances_are_named_and_change_nothing(
  tmp_path, monkeypatch
):
  fake_torch(monkeypatch)
  bad = {
    "conv1__0__0__weight": np.nan,
    "conv1__1__alpha": np.inf,
    "features__0__body__0__1__bias": -np.inf,
    "features__2__lif__conduct": np.nan,
    "lastave__0__weight": np.nan,
    "features__1__body__2__1__running_var": -1.0,
    "features__7__downsample__0__running_var": -0.5,
  }
  _write_state(tmp_path / "bad.pth", _small_state(**bad))
  model = _small_resnet19()
  before = _leaves(model)
  with pytest.raises(models.NonFiniteWeightsError) as err:
    models.load_authors_checkpoint(model, tmp_path / "bad.pth")
  message = str(err.value)
  assert "7 tensors hold NaN/inf or a negative running variance" in message
  assert "conv1.0.0.weight (NaN or inf), conv1.1.alpha (NaN or inf)" in message
  assert "and 2 more; pass allow_nonfinite=True" in message
  assert message.count(" (NaN or inf)") + message.count(" (a negative variance)") == 5
  _assert_unchanged(model, before)

  _write_state(tmp_path / "var.pth", _small_state(features__4__body__0__1__running_var=-2.0))
  with pytest.raises(models.NonFiniteWeightsError, match=r"running_var \(a negative variance\)"):
    models.load_authors_checkpoint(model, tmp_path / "var.pth")
  _assert_unchanged(model, before)

  models.load_authors_checkpoint(model, tmp_path / "bad.pth", allow_nonfinite=True)
  assert np.isnan(np.asarray(model.stem.layer.conv.kernel[...])).all()
  assert (np.asarray(model.blocks[1].conv2.norm.norm.var[...]) == -1).all()


def test_an_all_nan_file_gets_no_norm_advice(tmp_path, monkeypatch):
  fake_torch(monkeypatch)
  state = {k: np.full_like(v, np.nan) for k, v in _small_state().items()}
  _write_state(tmp_path / "nan.pth", state)
  model = _small_resnet19()
  with pytest.raises(models.NonFiniteWeightsError) as err:
    models.load_authors_checkpoint(model, tmp_path / "nan.pth")
  assert "norm=" not in str(err.value) and "and " in str(err.value)
  models.load_authors_checkpoint(model, tmp_path / "nan.pth", allow_nonfinite=True)
  assert np.isnan(np.asarray(model.classifier.fcs[0].kernel[...])).all()


def test_norm_advice_only_when_the_norm_is_the_mismatch():
  other_vth = {  # every tdBN's V_th (a scalar; GLIF's Vth is per channel)
    k: np.float32(0.7) if k.endswith("Vth") and not v.shape else v
    for k, v in _small_state().items()
  }
  with pytest.raises(AuthorsCheckpointError) as err:
    load_authors_state_dict(_small_resnet19(), other_vth)  # tdBN, another V_th
  assert "Vth = 0.7" in str(err.value) and "another V_th" in str(err.value)
  assert "norm=" not in str(err.value)
  with pytest.raises(AuthorsCheckpointError, match="build the model with norm='tdbn'"):
    load_authors_state_dict(_small_resnet19(norm="bn"), other_vth)
