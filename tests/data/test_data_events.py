"""Event parsing and frame binning, checked against hand-computed counts."""

import numpy as np
import pytest

from glif_jax.data import CorruptDatasetError, _events


def test_cifar10_dvs_parse_matches_spikingjelly_layout(fmt):
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


def test_cifar10_dvs_partial_event_is_an_error(fmt):
  raw = fmt.cifar10_dvs_aedat([(1, 2, 3, 0)])
  with pytest.raises(CorruptDatasetError, match="b.aedat.*8-byte"):
    _events.parse_cifar10_dvs(raw[:-2], name="b.aedat")


def test_aedat31_parse_skips_other_packets(fmt):
  written = [(t, t, 127 - t, t % 2) for t in range(7)]
  ev = _events.parse_aedat31_polarity(fmt.aedat31(written, packet=3), name="g")
  np.testing.assert_array_equal(np.stack(ev, 1), np.array(written))


def test_aedat31_truncated_packet_is_an_error(fmt):
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


def test_downsampling_sum_pools_coordinates():
  ev = _events.Events(
    np.arange(4), np.array([0, 2, 127, 126]), np.array([0, 3, 127, 64]), np.zeros(4, int)
  )
  frames = _events.events_to_frames(ev, num_frames=1, split_by="number", size=48)
  assert frames.shape == (1, 48, 48, 2)
  # x*48//128: 0->0, 2->0, 127->47, 126->47; y: 0->0, 3->1, 127->47, 64->24.
  assert frames[0, 0, 0, 0] == 1 and frames[0, 1, 0, 0] == 1
  assert frames[0, 47, 47, 0] == 1 and frames[0, 24, 47, 0] == 1


def test_fewer_events_than_frames_go_to_the_last_frame():
  frames = _events.events_to_frames(_events_at([1, 2]), num_frames=4, split_by="number")
  np.testing.assert_array_equal(frames.sum(axis=(1, 2, 3)), [0, 0, 0, 2])


def test_out_of_sensor_coordinates_are_rejected():
  with pytest.raises(ValueError, match="x outside"):
    _events.events_to_frames(_events_at([1], x=200), num_frames=1, split_by="time")
