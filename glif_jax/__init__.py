"""glif-jax: spiking neural networks with learnable gated neurons in JAX/Flax."""

from glif_jax import neurons, surrogates

__version__ = "0.3.0"

__all__ = ["neurons", "surrogates"]
