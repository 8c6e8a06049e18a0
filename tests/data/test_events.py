"""Event parsing, frame integration and resizing, checked against hand-computed values."""

import jax
import numpy as np
import pytest

from glif_jax.data import CorruptDatasetError, _events
from tests.support import files as fmt


def test_cifar10_dvs_parse_matches_spikingjelly_layout():
  written = [(5, 3, 7, 1), (9, 127, 0, 0), (12, 0, 127, 1)]
  ev = _events.parse_cifar10_dvs(fmt.cifar10_dvs_aedat(written), name="a.aedat")
  np.testing.assert_array_equal(np.stack(ev, 1), np.array(written))


def test_cifar10_dvs_raw_bits():
  # SpikingJelly: x = 127 - ((addr >> 8) & 0x7F), y = 127 - ((addr >> 1) & 0x7F),
  # p = 1 - (addr & 1).
  addr = (3 << 8) | (5 << 1) | 1
  raw = b"#!AER-DAT2.0\r\n" + addr.to_bytes(4, "big") + (42).to_bytes(4, "big")
  ev = _events.parse_cifar10_dvs(raw, name="a")
  assert (ev.t[0], ev.x[0], ev.y[0], ev.p[0]) == (42, 124, 122, 0)


def test_cifar10_dvs_partial_event_is_an_error():
  raw = fmt.cifar10_dvs_aedat([(1, 2, 3, 0)])
  with pytest.raises(CorruptDatasetError, match="b.aedat.*8-byte"):
    _events.parse_cifar10_dvs(raw[:-2], name="b.aedat")


def test_aedat31_parse_skips_other_packets():
  written = [(t, t, 127 - t, t % 2) for t in range(7)]
  ev = _events.parse_aedat31_polarity(fmt.aedat31(written, packet=3), name="g")
  np.testing.assert_array_equal(np.stack(ev, 1), np.array(written))


def test_aedat31_truncated_packet_is_an_error():
  raw = fmt.aedat31([(1, 2, 3, 0), (2, 2, 3, 1)])
  with pytest.raises(CorruptDatasetError, match="g.aedat.*packet"):
    _events.parse_aedat31_polarity(raw[:-4], name="g.aedat")


def _events_at(ts, x=0, y=0, p=0):
  n = len(ts)
  return _events.Events(np.asarray(ts, np.int64), np.full(n, x), np.full(n, y), np.full(n, p))


def test_split_by_number_last_frame_takes_remainder():
  # 10 events, T = 3: 10 // 3 = 3 per frame, last frame 3 + 1.
  idx = _events.frame_index(np.arange(10), 3, "number")
  np.testing.assert_array_equal(idx, [0, 0, 0, 1, 1, 1, 2, 2, 2, 2])


def test_split_by_time_equal_durations():
  # t in [0, 100], T = 4: dt = 25; frames [0,25) [25,50) [50,75) [75, end].
  idx = _events.frame_index(np.array([0, 24, 25, 60, 74, 75, 100]), 4, "time")
  np.testing.assert_array_equal(idx, [0, 0, 1, 2, 2, 3, 3])


def test_frames_count_events_per_pixel_and_polarity():
  ev = _events.Events(
    t=np.arange(6),
    x=np.array([1, 1, 2, 1, 1, 1]),
    y=np.array([0, 0, 5, 0, 0, 0]),
    p=np.array([1, 1, 0, 0, 1, 1]),
  )
  frames = _events.events_to_frames(ev, num_frames=2, split_by="number")
  assert frames.shape == (2, 128, 128, 2) and frames.dtype == np.uint16
  assert frames[0, 0, 1, 1] == 2 and frames[0, 5, 2, 0] == 1
  assert frames[1, 0, 1, 0] == 1 and frames[1, 0, 1, 1] == 2
  assert frames.sum() == 6


def test_fewer_events_than_frames_go_to_the_last_frame():
  frames = _events.events_to_frames(_events_at([1, 2]), num_frames=4, split_by="number")
  np.testing.assert_array_equal(frames.sum(axis=(1, 2, 3)), [0, 0, 0, 2])


def test_out_of_sensor_coordinates_are_rejected():
  with pytest.raises(ValueError, match="x outside"):
    _events.events_to_frames(_events_at([1], x=200), num_frames=1, split_by="time")


def test_split_by_number_matches_spikingjelly_segments():
  # SpikingJelly's cal_fixed_frames_number_segment_index, split_by='number', N = 11,
  # T = 4: di = 11 // 4 = 2, so j_l = [0, 2, 4, 6] and j_r = [2, 4, 6, 11] (the last
  # segment runs to N). Events (t, x, y, p), one line per segment:
  written = [
    (0, 5, 1, 0), (1, 5, 1, 0),                            # segment 0: idx 0, 1
    (2, 5, 1, 1), (3, 6, 2, 0),                            # segment 1: idx 2, 3
    (4, 6, 2, 0), (5, 6, 2, 1),                            # segment 2: idx 4, 5
    (6, 5, 1, 0), (7, 5, 1, 0), (8, 5, 1, 1), (9, 127, 0, 1), (10, 0, 127, 0),  # 3: 6..10
  ]  # fmt: skip
  t, x, y, p = (np.array(c) for c in zip(*written))
  frames = _events.events_to_frames(_events.Events(t, x, y, p), num_frames=4, split_by="number")
  # [frame, row y, column x, polarity] -> count, computed by hand from the list above.
  want = {
    (0, 1, 5, 0): 2,
    (1, 1, 5, 1): 1, (1, 2, 6, 0): 1,
    (2, 2, 6, 0): 1, (2, 2, 6, 1): 1,
    (3, 1, 5, 0): 2, (3, 1, 5, 1): 1, (3, 0, 127, 1): 1, (3, 127, 0, 0): 1,
  }  # fmt: skip
  assert frames.shape == (4, 128, 128, 2) and frames.dtype == np.uint16
  assert {tuple(int(i) for i in k): int(frames[k]) for k in zip(*np.nonzero(frames))} == want


def test_bilinear_matrix_hand_values():
  # Downscale 8 -> 3 (scale 8/3): output i reads s = (i + 0.5) * 8/3 - 0.5 =
  # 5/6, 7/2, 37/6, i.e. pixels (0, 1) with weights (1/6, 5/6), (3, 4) with (1/2, 1/2),
  # (6, 7) with (5/6, 1/6); pixels 2 and 5 are never read (no antialiasing).
  want = np.zeros((3, 8))
  want[0, :2] = [1 / 6, 5 / 6]
  want[1, 3:5] = [1 / 2, 1 / 2]
  want[2, 6:] = [5 / 6, 1 / 6]
  np.testing.assert_allclose(_events.bilinear_matrix(8, 3), want, atol=1e-12)
  # Upscale 2 -> 4 (scale 1/2): s = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (pixel 1 twice).
  want_up = [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]]
  np.testing.assert_allclose(_events.bilinear_matrix(2, 4), want_up, atol=1e-12)


def test_resize_128_to_48_hand_values():
  # 128 -> 48 (scale 8/3): output row 1 reads rows 3 and 4 with weights 1/2 each, and no
  # output reads row 2 (s = 5/6, 7/2, ... skips it). A count of 4 at (row 3, column 3)
  # becomes 4 * 1/2 * 1/2 = 1 at output (1, 1); a count at row 2 disappears.
  frames = np.zeros((1, 128, 128, 2), np.uint16)
  frames[0, 3, 3, 1] = 4
  frames[0, 2, 3, 0] = 7
  resized = _events.resize_frames(frames, 48)
  assert resized.shape == (1, 48, 48, 2) and resized.dtype == np.float32
  assert resized[0, 1, 1, 1] == 1.0 and resized[..., 1].sum() == 1.0
  assert resized[..., 0].sum() == 0.0


def test_resize_matches_jax_image_resize():
  # jax.image.resize "linear" without antialiasing samples at the same half-pixel
  # centres; it computes in float32, hence the tolerance.
  counts = np.random.default_rng(0).integers(0, 9, size=(3, 128, 128, 2)).astype(np.uint16)
  want = jax.image.resize(counts.astype(np.float32), (3, 48, 48, 2), "linear", antialias=False)
  np.testing.assert_allclose(_events.resize_frames(counts, 48), want, rtol=1e-5, atol=1e-4)
