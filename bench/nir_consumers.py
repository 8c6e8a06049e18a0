"""Do other simulators read our NIR export as we run it? Norse and snnTorch, checked.

A 2-layer dense LIF network (Linear → LIF → Linear → LIF) is exported with
`glif_jax.analysis.nir_export.to_nir` at dt = 1e-3 and 1e-4, imported by each consumer
(``norse.torch.from_nir``, ``snntorch.import_from_nir``), run step by step on the same
input, and its output spikes compared with ours (`nir_export.run_layers`). Prints one JSON
line per (consumer, dt): their firing rate and ours, and how many of the output spikes
(T × B × outputs) are equal. A consumer that is not installed gets a line saying so
(``pip install torch norse snntorch``); without torch, one line says the check is skipped.

  python -m bench.nir_consumers [--timesteps 20] [--batch 2]
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import nnx

from bench.common import emit, machine
from glif_jax import nn as snn
from glif_jax.analysis import nir_export

# consumer -> (the package it needs, the export time steps it is checked at)
CONSUMERS = {"norse": ("norse", (1e-3,)), "snntorch": ("snntorch", (1e-3, 1e-4))}
IN, HIDDEN, OUT = 16, 32, 10


def network() -> list[Any]:
  """Linear(16, 32) → LIF(τ = 2) → Linear(32, 10) → LIF(τ = 2), hard reset to 0."""
  rngs = nnx.Rngs(0)
  first, second = nnx.Linear(IN, HIDDEN, rngs=rngs), nnx.Linear(HIDDEN, OUT, rngs=rngs)
  for layer in (first, second):
    layer.kernel[...] = layer.kernel[...] * 8.0  # our output fires at a rate of 0.21
  return [first, snn.LIF(tau=2.0), second, snn.LIF(tau=2.0)]


def _import(consumer: str) -> Callable[[Any], Any]:
  """The consumer's NIR importer: a function of a `nir.NIRGraph` to a torch module."""
  if consumer == "norse":
    import norse.torch

    return norse.torch.from_nir
  import snntorch

  return snntorch.import_from_nir


def run_torch(module: Any, x: np.ndarray) -> np.ndarray:
  """Runs an imported module one step at a time, carrying its state: spikes ``[T, B, N]``."""
  import torch

  state, outputs = None, []
  with torch.no_grad():
    for x_t in torch.from_numpy(x):
      out, state = module(x_t, state)
      out = out[0] if isinstance(out, tuple) else out  # a neuron's (spikes, membrane)
      outputs.append(out.numpy())
  return np.stack(outputs)


def compare(consumer: str, dt: float, layers: list[Any], x: np.ndarray) -> dict[str, Any]:
  """Our spikes against ``consumer``'s on the graph exported at ``dt``."""
  ours = np.asarray(nnx.jit(nir_export.run_layers)(layers, jax.numpy.asarray(x)))
  record = {"consumer": consumer, "dt": dt, "ours_rate": float(ours.mean()), "of": ours.size}
  try:
    theirs = run_torch(_import(consumer)(nir_export.to_nir(layers, (IN,), dt=dt)), x)
  except (AssertionError, NotImplementedError, RuntimeError, TypeError, ValueError) as err:
    # an importer that refuses the graph: say so, go on
    return record | {"error": f"{type(err).__name__}: {err}"}
  return record | {
    "their_rate": float(theirs.mean()),
    "equal": int((theirs == ours).sum()),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--timesteps", type=int, default=20)
  parser.add_argument("--batch", type=int, default=2)
  args = parser.parse_args()
  if importlib.util.find_spec("torch") is None:
    emit({"skipped": "torch is not installed: pip install torch norse snntorch"})
    return
  emit({"machine": machine()})
  layers = network()
  x = np.random.default_rng(0).uniform(0, 1, (args.timesteps, args.batch, IN)).astype(np.float32)
  for consumer, (package, dts) in CONSUMERS.items():
    if importlib.util.find_spec(package) is None:
      emit({"consumer": consumer, "skipped": f"{package} is not installed: pip install {package}"})
      continue
    for dt in dts:
      emit(compare(consumer, dt, layers, x))


if __name__ == "__main__":
  main()
