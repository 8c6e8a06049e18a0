"""Input pipeline throughput, and how long the MNIST main job's step waits on input.

Prints JSON: images/s of the augmented CIFAR-shaped training stream (32x32x3 uint8,
batch 64, random crop + flip, normalised) and of the MNIST-shaped stream (28x28x1,
batch 128), each read in the loop's thread and with grain threads; then the main job
(``configs/mnist_glif.py``) for a few hundred steps, with the seconds its loop waited for
the next batch (``summary.json``'s ``input_wait_s``). Synthetic uint8 records in memory
stand in for the array_record files (the main job uses the prepared MNIST when there is
one), so the numbers are those of the pipeline, not of the disk.

  python -m bench.input_pipeline [--batches 300] [--steps 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from bench import common
from configs import mnist_glif
from glif_jax import data
from glif_jax.training import input_pipeline, train_and_evaluate

MNIST_TRAIN = 6_000  # records of the in-memory MNIST-shaped training split


class MemorySource:
  """``n`` random uint8 images of ``shape`` with labels, random access like a RecordSource."""

  def __init__(self, n: int, shape: tuple[int, ...], num_classes: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    self.images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    self.labels = rng.integers(0, num_classes, size=n)

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, i: int) -> dict[str, Any]:
    return {"image": self.images[i], "label": self.labels[i]}

  def __getitems__(self, keys: list[int]) -> list[dict[str, Any]]:
    return [self[i] for i in keys]


def images_per_second(
  source: MemorySource, *, dataset: str, batch_size: int, batches: int, threads: int
) -> float:
  """Training images/s of ``data.make_batches`` over ``batches`` batches (after one)."""
  stream = data.make_batches(
    data.RecordSource(source, data.info(dataset)), batch_size=batch_size, seed=0, epoch=0,
    train=True, num_threads=threads,
  )  # fmt: skip
  next(stream)
  start = time.perf_counter()
  for _ in range(batches):
    next(stream)
  return batches * batch_size / (time.perf_counter() - start)


def main_job_input_wait(steps: int) -> dict[str, Any]:
  """``configs/mnist_glif.py`` for ``steps`` steps: on the prepared MNIST if there is one,
  else on in-memory MNIST-shaped records (through the same pipeline from the fetch on)."""
  config = mnist_glif.get_config()
  config.num_train_steps, config.progress_bar, config.log_every_steps = steps, False, steps
  real = data.builder("mnist").is_prepared()
  info = data.info("mnist")
  sizes = {"train": MNIST_TRAIN, "test": 500}
  splits = {k: data.RecordSource(MemorySource(n, info.input_shape), info) for k, n in sizes.items()}
  in_memory = lambda config: (splits, info)
  with (
    tempfile.TemporaryDirectory() as workdir,
    contextlib.nullcontext() if real else mock.patch.object(input_pipeline, "load", in_memory),
  ):
    train_and_evaluate(config, workdir)
    summary = json.loads(Path(workdir, "summary.json").read_text())
  return {
    "data": "prepared MNIST" if real else "in-memory MNIST-shaped records",
    "steps": steps,
    "batch_size": config.batch_size,
    "input_threads": config.input_threads,
    "wall_time_s": summary["wall_time_s"],
    "input_wait_s": summary["input_wait_s"],
    "input_wait_per_step_ms": 1e3 * summary["input_wait_s"] / steps,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batches", type=int, default=300, help="batches timed per stream")
  parser.add_argument("--steps", type=int, default=200, help="steps of the MNIST main job")
  args = parser.parse_args()
  cifar = MemorySource((args.batches + 1) * 64, (32, 32, 3))  # one epoch of batches
  mnist = MemorySource((args.batches + 1) * 128, (28, 28, 1))
  streams = {
    f"{name}_images_per_s_threads_{threads}": images_per_second(
      source, dataset=dataset, batch_size=batch, batches=args.batches, threads=threads
    )
    for name, source, dataset, batch in (
      ("cifar_augmented", cifar, "cifar10", 64),
      ("mnist", mnist, "mnist", 128),
    )
    for threads in (0, 2)
  }
  result = {
    "machine": common.machine(),
    **streams,
    "mnist_main_job": main_job_input_wait(args.steps),
  }
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
