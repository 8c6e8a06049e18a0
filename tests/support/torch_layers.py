"""PyTorch's layers as the GLIF authors' and SpikingJelly's networks use them, transcribed
to NumPy (NCHW, float64), and our arrays in their layout: shared by the tests that hold
glif-jax's blocks against theirs (`tests/models/test_paper_networks.py`,
`tests/models/test_plif_nets.py`)."""

import jax
import numpy as np
from flax import nnx


def their_conv(x, w, stride, padding):
  """nn.Conv2d(bias=False) on x [N, C, H, W] with weight w [O, C, k, k]."""
  k = w.shape[-1]
  x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
  ho = (x.shape[2] - k) // stride + 1
  wo = (x.shape[3] - k) // stride + 1
  out = 0
  for i in range(k):
    for j in range(k):
      patch = x[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
      out = out + np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
  return out


def seq_to_ann(fn, x):
  """SeqToANNContainer: fn on [T·B, ...], reshaped back to [T, B, ...]."""
  t, b = x.shape[:2]
  y = fn(x.reshape(t * b, *x.shape[2:]))
  return y.reshape(t, b, *y.shape[1:])


def oihw(conv: nnx.Conv) -> np.ndarray:
  return np.asarray(conv.kernel[...], np.float64).transpose(3, 2, 0, 1)  # HWIO -> OIHW


def nchw(x: jax.Array) -> np.ndarray:
  return np.asarray(x, np.float64).transpose(0, 1, 4, 2, 3)  # [T, B, H, W, C] -> NCHW
