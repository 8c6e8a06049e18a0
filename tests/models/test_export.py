"""The compiled train and eval steps lower for GPU and TPU, checked on a CPU-only machine.

`jax.export` lowers a jitted function for platforms that are not present: a host callback
(a custom call with no compatibility guarantee), an op with no CUDA or TPU lowering, or a
float64 value in the module fails here before the first accelerator run. Tiny widths and
abstract arguments (`jax.ShapeDtypeStruct`): nothing is compiled or run.
"""

import functools

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

from glif_jax import models
from glif_jax.training import create_train_state, eval_step, train_step
from glif_jax.training.losses import mean_logits_cross_entropy

PLATFORMS = ("cuda", "tpu")
T, B, CLASSES = 2, 2, 10

# name -> (in_channels, input side, width, event frames)
MODELS = {
  "resnet19": (3, 8, 2, False),
  "resnet18ms": (3, 32, 2, False),
  "sew_dvs": (2, 16, 2, True),
  "plif_net_cifar10dvs": (2, 16, 2, True),
}


def _steps(name: str, dtype) -> tuple[list, dict, dict]:
  """The jitted train and eval steps of a tiny ``name`` and their abstract arguments."""
  channels, side, width, events = MODELS[name]
  build = functools.partial(
    models.create,
    name,
    num_classes=CLASSES,
    timesteps=T,
    in_channels=channels,
    width=width,
    input_size=side,
    dtype=dtype,
  )
  tx = optax.sgd(0.1, momentum=0.9)
  # Shapes only: initialising the parameters eagerly would compile an op per shape.
  graphdefs, state = jax.eval_shape(lambda: create_train_state(build(rngs=nnx.Rngs(0)), tx))
  image = (B, T, side, side, channels) if events else (B, side, side, channels)  # batch-major
  batch = {
    "image": jax.ShapeDtypeStruct(image, jnp.float32),
    "label": jax.ShapeDtypeStruct((B,), jnp.int32),
  }
  loss = mean_logits_cross_entropy
  steps = [
    jax.jit(functools.partial(train_step, graphdef=graphdefs.train, tx=tx, loss_fn=loss)),
    jax.jit(functools.partial(eval_step, graphdef=graphdefs.eval, loss_fn=loss)),
  ]
  return steps, state, batch


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_train_and_eval_steps_lower_for_gpu_and_tpu(name, dtype):
  steps, state, batch = _steps(name, dtype)
  for step in steps:  # both platforms in one export: one trace, two lowerings
    exported = jax.export.export(step, platforms=PLATFORMS)(state, batch)
    assert exported.platforms == PLATFORMS
    module = exported.mlir_module()
    assert "f64" not in module, "float64 in the lowered step"
    assert ("bf16" in module) == (dtype == jnp.bfloat16)


def test_a_host_callback_is_refused():
  # The guard the test above relies on: a host callback does not export.
  def with_callback(x):
    return jax.pure_callback(lambda v: v, jax.ShapeDtypeStruct((2,), jnp.float32), x)

  with pytest.raises(ValueError):
    jax.export.export(jax.jit(with_callback), platforms=("cuda",))(
      jax.ShapeDtypeStruct((2,), jnp.float32)
    )
