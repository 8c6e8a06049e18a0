"""Prints the training losses of the first steps of ``configs/smoke.py`` as JSON (process 0).

``python -m tests.support.trajectory <parallel> <steps>``; in several processes when
``JAX_NUM_PROCESSES`` is set. Built from the library's pieces as `train_and_evaluate`
builds them: each process reads its rows of every global batch.
"""

import functools
import json
import os
import sys

import jax

from configs import smoke
from glif_jax.training import (
  DataPosition,
  Layout,
  create_model,
  create_train_state,
  input_pipeline,
  make_loss,
  make_tx,
  train_step,
)
from glif_jax.training.parallel import initialize as initialize_distributed
from tests.support.smoke import checked


def losses(parallel: str, steps: int) -> list[float]:
  config = checked(smoke.get_config())
  splits, info = input_pipeline.load(config)
  layout = Layout(parallel)
  tx = make_tx(config, steps_per_epoch=16, total_steps=32)
  graphdefs, state = create_train_state(
    create_model(config, info, bn_axis_name=layout.axis_name), tx
  )
  step = layout.compile(
    functools.partial(train_step, graphdef=graphdefs.train, tx=tx, loss_fn=make_loss(config)),
    donate=(0,),
  )
  rows = layout.rows(config.batch_size)
  stream = input_pipeline.train_stream(splits["train"], config, DataPosition(0, 0), rows=rows)
  state, found = layout.state(state), []
  for _ in range(steps):
    state, metrics = step(state, layout.batch(next(stream), config.batch_size))
    found.append(float(layout.host(metrics["loss"])))
  return found


if __name__ == "__main__":
  if "JAX_NUM_PROCESSES" in os.environ:
    initialize_distributed(smoke.get_config().distributed_timeout)
  result = losses(sys.argv[1], int(sys.argv[2]))
  if jax.process_index() == 0:
    print(json.dumps(result))
