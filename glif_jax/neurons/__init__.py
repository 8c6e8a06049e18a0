"""Pure neuron functions: NamedTuple parameters, state and constants, run over time.

Every neuron is a step ``*_step(params, state, x_t, *, constants) -> (spike_t, new_state)``
written once beside its equations (`glif_step`, `klif_step`, `lif_step`), and
`run(step, params, x, state)` runs any such step over the leading time axis of
``x [T, *batch, C]`` with one custom VJP that keeps only each step's input for the
backward pass, returning ``(spikes, final_state)``; `run_trace` returns
``(spikes, states [T, ...])`` instead. The layer functions `glif`, `glif_f`, `klif`,
`lif`, `plif` (and their ``*_trace`` twins) check their arguments and run their step. Constants that are not arrays travel in one hashable NamedTuple
per family: `GLIFConstants`, `LIFConstants` (LIF, PLIF, KLIF). Nothing here imports Flax;
everything works under `jax.jit`, `jax.grad`, `jax.vmap` and `jax.pmap`.
"""

from glif_jax.neurons._loop import run, run_trace
from glif_jax.neurons.glif import (
  GATE_NAMES,
  GATINGS,
  GLIFCoefficients,
  GLIFConstants,
  GLIFParams,
  GLIFState,
  glif,
  glif_coefficients,
  glif_f,
  glif_gate_logits,
  glif_gates,
  glif_params,
  glif_step,
  glif_trace,
)
from glif_jax.neurons.klif import (
  KLIFParams,
  KLIFState,
  klif,
  klif_params,
  klif_step,
  klif_trace,
)
from glif_jax.neurons.lif import (
  LIFConstants,
  LIFState,
  PLIFParams,
  lif,
  lif_step,
  lif_trace,
  plif,
  plif_params,
  plif_trace,
)

__all__ = [
  "GATE_NAMES",
  "GATINGS",
  "GLIFCoefficients",
  "GLIFConstants",
  "GLIFParams",
  "GLIFState",
  "KLIFParams",
  "KLIFState",
  "LIFConstants",
  "LIFState",
  "PLIFParams",
  "glif",
  "glif_coefficients",
  "glif_f",
  "glif_gate_logits",
  "glif_gates",
  "glif_params",
  "glif_step",
  "glif_trace",
  "klif",
  "klif_params",
  "klif_step",
  "klif_trace",
  "lif",
  "lif_step",
  "lif_trace",
  "plif",
  "plif_params",
  "plif_trace",
  "run",
  "run_trace",
]
