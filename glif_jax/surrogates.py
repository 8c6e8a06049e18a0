"""Surrogate-gradient spike functions.

A surrogate is a Heaviside step in the forward pass and a smooth (or box-shaped)
pseudo-derivative in the backward pass, implemented once with `jax.custom_vjp`.
Each factory returns a frozen, hashable `Surrogate` value, so two calls with the
same arguments compare equal (and can be used as static arguments of `jax.jit`).

Forward, for every surrogate::

    H(x) = 1[x > 0]                  (default, ``inclusive=False``; GLIF)
    H(x) = 1[x >= 0]                 (``inclusive=True``; KLIF, LIF)
    H(NaN) = NaN                     (as ``jnp.heaviside``: the NaN reaches the loss)

The backward pass multiplies the incoming cotangent by ``grad(x)``, computed in
``x``'s dtype. The gradient formulas are documented on each factory.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from glif_jax import surrogates
  >>> spike = surrogates.rectangle(width=1.0)
  >>> spike(jnp.array([-0.2, 0.0, 0.3]))
  Array([0., 0., 1.], dtype=float32)
  >>> jax.grad(lambda x: spike(x).sum())(jnp.array([-0.6, 0.0, 0.3]))
  Array([0., 1., 1.], dtype=float32)
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

__all__ = [
  "ATan",
  "Rectangle",
  "Sigmoid",
  "SuperSpike",
  "Surrogate",
  "Triangle",
  "atan",
  "heaviside",
  "rectangle",
  "sigmoid",
  "superspike",
  "triangle",
]


def heaviside(x: jax.Array, inclusive: bool = False) -> jax.Array:
  """Step function in ``x``'s dtype: ``1[x > 0]``, or ``1[x >= 0]`` if ``inclusive``; NaN
  where ``x`` is NaN (as `jax.numpy.heaviside`), so a NaN is never silenced into no spike."""
  fired = (x >= 0 if inclusive else x > 0).astype(x.dtype)
  return jnp.where(jnp.isnan(x), x, fired)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _spike(x: jax.Array, surrogate: Surrogate, inclusive: bool) -> jax.Array:
  return heaviside(x, inclusive)


def _spike_fwd(x, surrogate, inclusive):
  return heaviside(x, inclusive), x


def _spike_bwd(surrogate, inclusive, x, cotangent):
  del inclusive
  return (cotangent * surrogate.grad(x).astype(cotangent.dtype),)


_spike.defvjp(_spike_fwd, _spike_bwd)


class Surrogate(abc.ABC):
  """A Heaviside spike with a surrogate derivative ``grad``."""

  @abc.abstractmethod
  def grad(self, x: jax.Array) -> jax.Array:
    """The surrogate derivative dH/dx at ``x`` (same shape and dtype)."""

  def __call__(self, x: jax.Array, *, inclusive: bool = False) -> jax.Array:
    """Spikes ``H(x)`` with this surrogate's gradient.

    Args:
      x: membrane potential minus threshold, any shape, a floating dtype.
      inclusive: fire at ``x == 0`` too (``x >= 0``) instead of only ``x > 0``.

    Returns:
      0/1 spikes (NaN where ``x`` is NaN), same shape and dtype as ``x``.
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise TypeError(f"surrogate spike expects a floating-point input, got dtype {x.dtype}")
    return _spike(x, self, inclusive)

  def __post_init__(self):
    """Checks the surrogate's parameter (a width or a slope, a dataclass field): > 0."""
    for name, value in vars(self).items():
      if not value > 0:
        raise ValueError(f"surrogate {name} must be > 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Rectangle(Surrogate):
  """Box surrogate: ``dH/dx = 1/width · 1[|x| < width/2]`` (GLIF's rule at width 1)."""

  width: float = 1.0

  def grad(self, x):
    inside = jnp.abs(x) < self.width / 2
    return inside.astype(x.dtype) / jnp.asarray(self.width, x.dtype)


@dataclasses.dataclass(frozen=True)
class Sigmoid(Surrogate):
  """Sigmoid surrogate: ``dH/dx = α·σ(αx)·(1 − σ(αx))`` (SpikingJelly's, KLIF's)."""

  alpha: float = 4.0

  def grad(self, x):
    z = self.alpha * x
    return self.alpha * jax.nn.sigmoid(z) * jax.nn.sigmoid(-z)  # σ(1 − σ) without cancellation


@dataclasses.dataclass(frozen=True)
class ATan(Surrogate):
  """Arc-tangent surrogate: ``dH/dx = (α/2) / (1 + (π/2·α·x)²)`` (SpikingJelly's ATan)."""

  alpha: float = 2.0

  def grad(self, x):
    return (self.alpha / 2) / (1 + jnp.square(math.pi / 2 * self.alpha * x))


@dataclasses.dataclass(frozen=True)
class Triangle(Surrogate):
  """Triangle surrogate: ``dH/dx = max(0, 1 − |x|/width) / width`` (integrates to 1)."""

  width: float = 1.0

  def grad(self, x):
    return jnp.maximum(0, 1 - jnp.abs(x) / self.width) / jnp.asarray(self.width, x.dtype)


@dataclasses.dataclass(frozen=True)
class SuperSpike(Surrogate):
  """SuperSpike surrogate (Zenke & Ganguli 2018): ``dH/dx = 1 / (1 + β|x|)²``."""

  beta: float = 10.0

  def grad(self, x):
    return 1 / jnp.square(1 + self.beta * jnp.abs(x))


def rectangle(width: float = 1.0) -> Rectangle:
  """Box surrogate ``dH/dx = 1/width · 1[|x| < width/2]``; width 1 is GLIF's rule."""
  return Rectangle(width)


def sigmoid(alpha: float = 4.0) -> Sigmoid:
  """Sigmoid surrogate ``dH/dx = α·σ(αx)·(1 − σ(αx))``, peak α/4 at 0."""
  return Sigmoid(alpha)


def atan(alpha: float = 2.0) -> ATan:
  """Arc-tangent surrogate ``dH/dx = (α/2) / (1 + (π/2·α·x)²)``, peak α/2 at 0."""
  return ATan(alpha)


def triangle(width: float = 1.0) -> Triangle:
  """Triangle surrogate ``dH/dx = max(0, 1 − |x|/width) / width``, peak 1/width at 0."""
  return Triangle(width)


def superspike(beta: float = 10.0) -> SuperSpike:
  """SuperSpike surrogate ``dH/dx = 1 / (1 + β|x|)²``, peak 1 at 0."""
  return SuperSpike(beta)
