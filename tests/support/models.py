"""Small models for tests that run a whole network: 8x8 one-channel images, seed 0."""

from flax import nnx

from glif_jax import models


def small_model(name: str, *, num_classes: int, timesteps: int, width: int) -> nnx.Module:
  """``models.create(name, ...)`` for 8x8 one-channel inputs, in eval mode."""
  model = models.create(
    name, num_classes=num_classes, timesteps=timesteps, in_channels=1, width=width,
    input_size=8, rngs=nnx.Rngs(0),
  )  # fmt: skip
  model.eval()
  return model
