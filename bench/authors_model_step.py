"""The peer of `bench.model_step`: the GLIF authors' PyTorch ResNet-19 train step.

Builds their ``ResNet_19_cifar_CW`` (``networks_for_CIFAR.py`` of their repository, with
the soft gates and channel-wise parameters of their published runs, random gates) for
CIFAR-10 at T and batch B, runs ``--steps`` SGD steps (momentum 0.9, as their recipe) on
random CIFAR-shaped data, and prints one JSON line: the median step time and this
process's peak resident memory (``ru_maxrss``, the model, one step and PyTorch's
allocator included), as `bench.model_step --peak-rss` gives it for glif-jax. Run one
setting per process (the peak is the process's high-water mark).

  python -m bench.authors_model_step --authors-dir PATH/TO/Gated-LIF --timesteps 6 --batch 32

Needs torch and SpikingJelly. Their code imports ``spikingjelly.clock_driven``, which
SpikingJelly 2.0 calls ``activation_based``; the same module is given under the old name.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import statistics
import sys
import time


def build_model(authors_dir: str, timesteps: int):
  """Their ``ResNet_19_cifar_CW`` for 10 classes with the ``lif_param`` of their train.py."""
  from spikingjelly import activation_based

  sys.modules.setdefault("spikingjelly.clock_driven", activation_based)
  sys.path.insert(0, authors_dir)
  with contextlib.redirect_stdout(io.StringIO()):  # their constructors print
    import layers  # theirs, importable from their directory only
    import networks_for_CIFAR

    lif_param = {
      "gate": [0.6, 0.8, 0.6],
      "param": [layers.tau, layers.Vth, layers.linear_decay, layers.conduct],
      "t": timesteps,
      "static_gate": False,
      "static_param": False,
      "time_wise": False,
      "soft_mode": True,
    }
    model = networks_for_CIFAR.ResNet_19_cifar_CW(lif_param=lif_param, input_size=32, n_class=10)
    model.randomize_gate()
  return model


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--authors-dir", required=True, help="a checkout of Ikarosy/Gated-LIF")
  parser.add_argument("--timesteps", type=int, default=6)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=1, help="timed steps after the first")
  args = parser.parse_args()
  import torch  # the bench extra

  torch.manual_seed(0)
  model = build_model(args.authors_dir, args.timesteps)
  optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
  images = torch.randn(args.batch, 3, 32, 32)
  labels = torch.randint(0, 10, (args.batch,))

  def step():
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()

  seconds = []
  for _ in range(1 + args.steps):  # the first step warms the allocator up
    start = time.perf_counter()
    step()
    seconds.append(time.perf_counter() - start)
  print(
    json.dumps(
      {
        "peer": "authors_resnet19_cifar_cw",
        "T": args.timesteps,
        "batch": args.batch,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "step_ms": statistics.median(seconds[1:] or seconds) * 1e3,
        "images_per_s": args.batch / statistics.median(seconds[1:] or seconds),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
      }
    )
  )


if __name__ == "__main__":
  main()
