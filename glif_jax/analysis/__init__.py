"""Analysis: neuron dynamics over parameter grids, network statistics, plots, NIR export.

- `dynamics`: f–I curves, GLIF gate sweeps and responses, each grid in one `jax.vmap`.
- `network`: per-layer firing rates, spike counts, SOPs and energy against an ANN, GLIF
  gate values (and their evolution over saved checkpoints).
- `plots`: matplotlib figures (headless), each returned and optionally saved (needs
  matplotlib; imported on first use).
- `figures`: the library's figures of neuron dynamics and of a network's statistics, each
  simulated from the parameters it plots and labelled from them (needs matplotlib).
- `report`: the Markdown report of a trained network, with its figures (needs
  matplotlib; imported on first use).
- `nir_export`: export of LIF/PLIF (and the exact GLIF cases) networks to NIR, and a JAX
  interpreter of the graphs (needs ``pip install nir``; imported on first use).
"""

import importlib

from glif_jax.analysis import dynamics, network
from glif_jax.analysis.dynamics import (
  GateSweep,
  GLIFTerms,
  constant_current,
  fi_curve,
  gate_sweep,
  glif_logits,
  glif_terms,
  lif_closed_form_rate,
  plif_logits,
  poisson_spikes,
  simulate,
  step_current,
)
from glif_jax.analysis.network import (
  NetworkStats,
  SynapticLayer,
  gate_evolution,
  glif_gates,
  network_statistics,
)

__all__ = [
  "GLIFTerms",
  "GateSweep",
  "NetworkStats",
  "SynapticLayer",
  "constant_current",
  "dynamics",
  "fi_curve",
  "figures",
  "gate_evolution",
  "gate_sweep",
  "glif_gates",
  "glif_logits",
  "glif_terms",
  "lif_closed_form_rate",
  "network",
  "network_statistics",
  "nir_export",
  "plif_logits",
  "plots",
  "poisson_spikes",
  "report",
  "simulate",
  "step_current",
]


_OPTIONAL = (
  "figures",
  "nir_export",
  "plots",
  "report",
)  # need nir / matplotlib: imported on first use


def __getattr__(name: str):
  if name in _OPTIONAL:
    return importlib.import_module(f"glif_jax.analysis.{name}")
  raise AttributeError(f"module 'glif_jax.analysis' has no attribute {name!r}")
