"""Event-camera files: AEDAT parsing and binning of event streams into frames.

Events are ``Events(t, x, y, p)`` arrays, ``x`` the column and ``y`` the row of a
128x128 sensor, ``p`` the polarity (0 or 1). Frames are per-sample ``[T, 128, 128, 2]``
event counts, channel = polarity (SpikingJelly's ``[T, 2, H, W]`` moved channel-last),
optionally resized with :func:`resize_frames` as the GLIF authors resize them.
"""

from __future__ import annotations

import struct
from typing import Literal, NamedTuple

import numpy as np

from glif_jax.data._errors import CorruptDatasetError

SENSOR_SIZE = 128
SplitBy = Literal["number", "time"]

# The most bytes one recording may hold; larger archive members are refused unread. Generous
# bounds: a CIFAR10-DVS recording lasts ~1.3 s (8 bytes per event: 8 M events), a DVS128
# Gesture recording ~1 min of 11 gestures (8-16 bytes per event: ~100 M events).
CIFAR10_DVS_MAX_BYTES = 64 * 2**20
DVS_GESTURE_MAX_BYTES = 2**30


class Events(NamedTuple):
  """An event stream, sorted by time."""

  t: np.ndarray  # int64 timestamps (microseconds)
  x: np.ndarray  # int64 column, 0 .. 127
  y: np.ndarray  # int64 row, 0 .. 127
  p: np.ndarray  # int64 polarity, 0 or 1

  def select(self, mask: np.ndarray) -> Events:
    """The events where ``mask`` is true."""
    return Events(*(a[mask] for a in self))


def _skip_ascii_header(data: bytes) -> int:
  """Offset of the first byte after the ``#``-prefixed ASCII header lines."""
  pos = 0
  while data.startswith(b"#", pos):
    end = data.find(b"\n", pos)
    next_pos = len(data) if end < 0 else end + 1
    line, pos = data[pos:next_pos], next_pos
    if line.rstrip() == b"#!END-HEADER":
      break
  return pos


def parse_cifar10_dvs(data: bytes, *, name: str) -> Events:
  """Parses a CIFAR10-DVS ``.aedat`` file (jAER AEDAT 2-style records).

  After the ASCII header, each event is a big-endian uint32 address followed by a
  big-endian uint32 timestamp. As in SpikingJelly's ``CIFAR10DVS``: with
  ``a = (addr >> 1) & 0x7F``, ``b = (addr >> 8) & 0x7F`` and ``q = addr & 1``, the event
  is at column ``x = 127 - b``, row ``y = 127 - a``, polarity ``p = 1 - q``.

  Args:
      data: the file contents.
      name: file name for error messages.

  Returns:
      The events, in file order.
  """
  body = memoryview(data)[_skip_ascii_header(data) :]
  if len(body) % 8:
    raise CorruptDatasetError(
      name, f"event data is {len(body)} bytes, not a whole number of 8-byte events"
    )
  words = np.frombuffer(body, ">u4").reshape(-1, 2).astype(np.int64)
  addr, t = words[:, 0], words[:, 1]
  a, b, q = (addr >> 1) & 0x7F, (addr >> 8) & 0x7F, addr & 1
  return Events(t=t, x=127 - b, y=127 - a, p=1 - q)


_AEDAT3_HEADER = struct.Struct("<HHIIIIII")
_POLARITY_EVENT = 1


def parse_aedat31_polarity(data: bytes, *, name: str) -> Events:
  """Parses the polarity events of an AEDAT 3.1 file (DVS128 Gesture).

  After the ASCII header, the file is a sequence of packets: a 28-byte little-endian
  header (type, source, size, ts-offset, ts-overflow, capacity, number, valid) and
  ``capacity * size`` bytes of events. Polarity packets (type 1) hold 8-byte events: a
  uint32 ``data`` (x = bits 17-31, y = bits 2-16, polarity = bit 1) and an int32
  timestamp extended by ``ts_overflow << 31``. Other packet types are skipped. As
  SpikingJelly's ``load_aedat_v3``, the per-event validity bit is not filtered.

  Args:
      data: the file contents.
      name: file name for error messages.

  Returns:
      The polarity events, in file order.
  """
  pos = _skip_ascii_header(data)
  chunks: list[np.ndarray] = []
  while pos < len(data):
    if pos + _AEDAT3_HEADER.size > len(data):
      raise CorruptDatasetError(name, f"truncated packet header at byte {pos}")
    e_type, _, e_size, _, overflow, capacity, number, _ = _AEDAT3_HEADER.unpack_from(data, pos)
    pos += _AEDAT3_HEADER.size
    end = pos + capacity * e_size
    if end > len(data) or number > capacity:
      raise CorruptDatasetError(name, f"truncated or malformed packet at byte {pos}")
    if e_type == _POLARITY_EVENT:
      if e_size != 8:
        raise CorruptDatasetError(name, f"polarity events of {e_size} bytes, expected 8")
      words = np.frombuffer(data, "<u4", count=2 * number, offset=pos).reshape(-1, 2)
      chunk = words.astype(np.int64)
      chunk[:, 1] |= int(overflow) << 31
      chunks.append(chunk)
    pos = end
  words = np.concatenate(chunks) if chunks else np.zeros((0, 2), np.int64)
  addr, t = words[:, 0], words[:, 1]
  return Events(t=t, x=(addr >> 17) & 0x7FFF, y=(addr >> 2) & 0x7FFF, p=(addr >> 1) & 1)


def frame_index(t: np.ndarray, num_frames: int, split_by: SplitBy) -> np.ndarray:
  """The frame (0 .. T-1) each event falls into, following SpikingJelly.

  ``"number"``: frames of ``N // T`` consecutive events each, the last frame also takes
  the remaining ``N mod T``. ``"time"``: frames of ``dt = (t[-1] - t[0]) // T``
  microseconds starting at ``t[0]``, the last frame takes everything after
  ``t[0] + (T-1)·dt`` (``dt`` is at least 1).

  Args:
      t: timestamps of the events, sorted.
      num_frames: T.
      split_by: ``"number"`` or ``"time"``.

  Returns:
      int64 ``[N]`` frame indices.
  """
  n = t.shape[0]
  if split_by == "number":
    per_frame = n // num_frames
    if per_frame == 0:
      return np.full(n, num_frames - 1, np.int64)
    return np.minimum(np.arange(n) // per_frame, num_frames - 1)
  if split_by == "time":
    if n == 0:
      return np.zeros(0, np.int64)
    dt = max((int(t[-1]) - int(t[0])) // num_frames, 1)
    return np.minimum((t - t[0]) // dt, num_frames - 1).astype(np.int64)
  raise ValueError(f"split_by must be 'number' or 'time', got {split_by!r}")


def events_to_frames(
  events: Events, *, num_frames: int, split_by: SplitBy, sensor_size: int = SENSOR_SIZE
) -> np.ndarray:
  """Integrates events into per-polarity count frames at sensor resolution, as SpikingJelly.

  Frame ``j`` counts the events whose index falls in segment ``j`` of :func:`frame_index`
  (SpikingJelly's ``integrate_events_by_fixed_frames_number``); channel 0 counts
  polarity 0 and channel 1 polarity 1 (SpikingJelly's ``[T, 2, H, W]`` moved channel-last).

  Args:
      events: the sample's events, sorted by time.
      num_frames: T, the number of frames.
      split_by: ``"number"`` (equal event counts) or ``"time"`` (equal durations).
      sensor_size: S, the sensor's height and width (128; N-MNIST's ATIS crop: 34).

  Returns:
      uint16 ``[T, S, S, 2]`` event counts (saturating at 65535).
  """
  s = sensor_size
  for axis, coords in (("x", events.x), ("y", events.y)):
    if coords.size and (coords.min() < 0 or coords.max() >= s):
      raise ValueError(f"event {axis} outside [0, {s}): {coords.min()}..{coords.max()}")
  frame = frame_index(events.t, num_frames, split_by)
  flat = ((frame * s + events.y) * s + events.x) * 2 + events.p
  counts = np.bincount(flat, minlength=num_frames * s * s * 2)
  counts = np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16)
  return counts.reshape(num_frames, s, s, 2)


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """The ``[out, in]`` matrix of PyTorch's bilinear interpolation along one axis.

  ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
  antialias=False)``: output pixel ``i`` reads the input at
  ``s = max((i + 0.5)·in/out - 0.5, 0)`` and mixes pixels ``floor(s)`` and
  ``floor(s) + 1`` (clamped to the last pixel) with weights ``1 - frac(s)`` and ``frac(s)``.
  Without antialiasing a downscale by more than 2 skips input pixels.
  """
  src = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
  lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  hi = np.minimum(lo + 1, in_size - 1)
  frac = src - lo
  matrix = np.zeros((out_size, in_size))
  rows = np.arange(out_size)
  np.add.at(matrix, (rows, lo), 1.0 - frac)
  np.add.at(matrix, (rows, hi), frac)
  return matrix


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize of ``[T, H, W, C]`` frames to ``[T, size, size, C]`` float32.

  What the GLIF authors' ``transforms.Resize([size, size])`` does to SpikingJelly's frame
  tensors with the torchvision of their time (before 0.17, ``antialias`` defaulted to
  ``False`` for tensors): separable bilinear interpolation, :func:`bilinear_matrix` on
  each spatial axis, computed in float64 and returned as float32.
  """
  _, h, w, _ = frames.shape
  planes = np.moveaxis(frames, -1, 1).astype(np.float64)  # [T, C, H, W]
  resized = bilinear_matrix(h, size) @ planes @ bilinear_matrix(w, size).T
  return np.moveaxis(resized, 1, -1).astype(np.float32)
