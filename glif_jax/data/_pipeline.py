"""Deterministic, step-indexed input pipeline on grain's ``MapDataset``.

Batch ``k`` of epoch ``e`` is a pure function of ``(seed, e, k)``: the epoch's order is a
permutation of the record indices drawn from ``(seed, e)``, batch ``k`` reads its
records with one ``__getitems__`` call, and augmentation draws from a generator that grain
seeds from ``(seed, e)`` and ``k``. A run resumed at
``(epoch, start_batch)`` therefore sees exactly the batches it would have seen; the
checkpoint only needs the two integers.

In a multi-process run each process reads, augments and normalises only its ``rows`` of
every global batch; the random draws are made for the whole global batch and sliced, so an
example's augmentation depends on its place in the epoch only, not on the number of
processes. The crop and flip are one vectorised gather per batch.

Batches are ``{"image": float32 [B, ...], "label": int32 [B]}``, as the source's
:class:`~glif_jax.data.DatasetInfo` says:

- static images: ``[B, H, W, C]``, scaled to [0, 1] then normalised per channel with
  ``mean``/``std``. Records of any size (ImageNet's) are first cropped to the input shape
  one by one with ``train_crop``/``eval_crop``, as the GLIF authors do
  (`imagenet_train_image`: random resized crop + flip; `imagenet_eval_image`: resize +
  centre crop).
- inputs without ``mean`` (event counts, synthetic images) as float32, not normalised.
  Event frames ``[B, T, H, W, 2]`` are batch-major like the images; the model moves T to
  the front (time-major).

Training batches may be augmented with a random crop of the input zero-padded by
``crop_padding`` pixels back to its size, and a random left-right flip; all T frames of an
event sample share one offset and one flip. Each data set has the GLIF authors' default
(``DatasetInfo.augmentation``): CIFAR 4 px + flip, CIFAR10-DVS 4 px without flip, others
none.

Evaluation batches cover every example: the last batch is padded with zeros to the full
batch size and every eval batch carries ``mask`` (bool ``[B]``, false on
padding), so metrics weighted by ``mask`` are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import Any, cast

import grain
import numpy as np

from glif_jax.data._errors import CorruptDatasetError
from glif_jax.data._info import Augmentation, DatasetInfo, RecordSource

Batch = dict[str, np.ndarray]
"""A batch: ``{"image": [B, ...], "label": [B]}`` and, for eval batches, ``"mask"``."""


def _derive_seed(seed: int, epoch: int, stream: int) -> int:
  """A uint32 seed that depends on (seed, epoch, stream) only."""
  return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def crop_flip(
  images: np.ndarray, top: np.ndarray, left: np.ndarray, flip: np.ndarray, padding: int
) -> np.ndarray:
  """Crops ``images [B, ..., H, W, C]`` zero-padded by ``padding`` at ``(top, left) [B]``,
  then flips left-right where ``flip [B]``: one ``take`` of whole pixels for the batch.

  Every leading axis of a sample (e.g. the T frames of ``[B, T, H, W, C]``) gets the
  sample's offset and flip.
  """
  b, *_, h, w, c = images.shape
  planes = images.reshape(b, -1, h, w, c)  # [B, M, H, W, C], M: the leading axes
  padded = np.pad(planes, ((0, 0), (0, 0), (padding, padding), (padding, padding), (0, 0)))
  height, width = padded.shape[2:4]
  rows = top[:, None] + np.arange(h)  # [B, H]
  cols = left[:, None] + np.where(flip[:, None], np.arange(w)[::-1], np.arange(w))  # [B, W]
  first_rows = np.arange(planes.shape[0] * planes.shape[1]).reshape(b, -1) * height  # [B, M]
  rows = first_rows[:, :, None] + rows[:, None, :]  # [B, M, H] into [B*M*H']
  pixels = rows[..., None] * width + cols[:, None, None, :]  # [B, M, H, W] into [B*M*H'*W']
  return padded.reshape(-1, c).take(pixels.reshape(-1), axis=0).reshape(images.shape)


def _draw_crop_flip(
  rng: np.random.Generator, n: int, augmentation: Augmentation
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(top, left, flip)`` of ``n`` examples: offsets in ``[0, 2 padding]``, flips at p = 1/2
  (none without ``augmentation.flip``)."""
  top, left = rng.integers(0, 2 * augmentation.crop_padding + 1, size=(2, n))
  return top, left, (rng.random(n) < 0.5) & augmentation.flip


def random_crop_flip(
  images: np.ndarray, rng: np.random.Generator, padding: int = 4, flip: bool = True
) -> np.ndarray:
  """Random crop of each zero-padded image back to its size, then a random left-right flip.

  Args:
      images: ``[B, H, W, C]``, or one image ``[H, W, C]``.
      rng: the generator to draw the offsets and the flips from.
      padding: pixels of zero padding on each side.
      flip: whether to flip (at p = 1/2).

  Returns:
      An array of the same shape and dtype.
  """
  batch = images if images.ndim == 4 else images[None]
  drawn = _draw_crop_flip(rng, len(batch), Augmentation(padding, flip))
  out = crop_flip(batch, *drawn, padding)
  return out if images.ndim == 4 else out[0]


class _Fetch:
  """Indices (``-1``: padding) -> ``{"image": list of arrays, "label"[, "mask"]}`` (picklable).

  One ``__getitems__`` call per batch (one array_record call, not one
  per record). Padding rows repeat a record, false in ``mask``.
  """

  def __init__(self, source: RecordSource, *, mask: bool) -> None:
    self._source = source
    self._mask = mask

  def __call__(self, indices: np.ndarray) -> dict[str, Any]:
    valid = indices >= 0
    keys = [int(i) for i in np.where(valid, indices, indices.max(initial=0))]
    records = self._source.__getitems__(keys)
    field = "frames" if "frames" in records[0] else "image"
    _refuse_nonfinite(self._source, keys, [r[field] for r in records])
    labels = np.asarray([r["label"] for r in records], np.int32) * valid
    batch = {"image": [r[field] for r in records], "label": labels}
    return {**batch, "mask": valid} if self._mask else batch


def _refuse_nonfinite(source: RecordSource, keys: list[int], inputs: list[np.ndarray]) -> None:
  """Raises `CorruptDatasetError` naming the first record whose floating input holds NaN/inf
  (it would reach the model as a NaN loss, or as silence through a clipping layer)."""
  for key, x in zip(keys, inputs):
    if x.dtype.kind == "f" and not np.isfinite(x).all():
      raise CorruptDatasetError(
        f"record {key} of the data set {source.info.name!r}",
        f"its input holds {np.count_nonzero(~np.isfinite(x))} NaN or infinite values; "
        "fix or leave out that record",
      )


def _stack(batch: dict[str, Any]) -> Batch:
  """The records' inputs, all of one shape, stacked to ``[B, ...]``."""
  return {**batch, "image": np.stack(batch["image"])}


class _RandomPerRecord:
  """``crop(image, rng)`` of each record of this process's ``rows`` of a global batch, stacked.

  One seed per example of the whole global batch is drawn from the batch's generator and
  sliced, so an example's crop depends on its place in the epoch only.
  """

  def __init__(self, crop: Callable[..., np.ndarray], batch_size: int, rows: slice) -> None:
    self._crop = crop
    self._batch_size = batch_size
    self._rows = rows

  def __call__(self, batch: dict[str, Any], rng: np.random.Generator) -> Batch:
    seeds = rng.integers(2**63, size=self._batch_size)[self._rows]
    crops = [self._crop(x, np.random.default_rng(s)) for x, s in zip(batch["image"], seeds)]
    return {**batch, "image": np.stack(crops)}


class _PerRecord:
  """``crop(image)`` of each record, stacked."""

  def __init__(self, crop: Callable[[np.ndarray], np.ndarray]) -> None:
    self._crop = crop

  def __call__(self, batch: dict[str, Any]) -> Batch:
    return {**batch, "image": np.stack([self._crop(x) for x in batch["image"]])}


class _Augment:
  """Random crop + flip of this process's ``rows`` of a global batch of ``batch_size``.

  The offsets of the whole global batch are drawn from the batch's generator and sliced,
  so every example's augmentation depends on its place in the epoch only, not on how
  many processes share the batch.
  """

  def __init__(self, augmentation: Augmentation, batch_size: int, rows: slice) -> None:
    self._augmentation = augmentation
    self._batch_size = batch_size
    self._rows = rows

  def __call__(self, batch: Batch, rng: np.random.Generator) -> Batch:
    drawn = _draw_crop_flip(rng, self._batch_size, self._augmentation)
    top, left, flip = (d[self._rows] for d in drawn)
    padding = self._augmentation.crop_padding
    return {**batch, "image": crop_flip(batch["image"], top, left, flip, padding)}


def index_batches(
  num_records: int, *, batch_size: int, seed: int, epoch: int, train: bool, rows: slice
) -> grain.MapDataset:
  """Batch ``k`` of the epoch as this process's ``rows`` of record indices (``-1``: padding).

  Training batches follow a permutation of the records drawn from ``(seed, epoch)`` and
  drop the remainder; eval batches keep the order and pad the last batch with ``-1``.
  """
  order = _EpochOrder(
    num_records, batch_size, rows, seed=_derive_seed(seed, epoch, 0) if train else None
  )
  num = num_batches(range(num_records), batch_size=batch_size, train=train)
  return grain.MapDataset.range(num).map(order)


class _EpochOrder:
  """Batch index ``k`` -> ``rows`` of the record indices of global batch ``k``.

  The epoch's permutation is drawn once (``seed`` None: the records in order), so a batch
  costs one slice, not one shuffle lookup per record.
  """

  def __init__(self, num_records: int, batch_size: int, rows: slice, *, seed: int | None):
    order = np.arange(num_records)
    if seed is not None:
      order = np.random.default_rng(seed).permutation(num_records)
    padded = -(-num_records // batch_size) * batch_size
    self._order = np.concatenate([order, np.full(padded - num_records, -1)])
    self._batch_size = batch_size
    self._rows = rows

  def __call__(self, k: int) -> np.ndarray:
    return self._order[k * self._batch_size : (k + 1) * self._batch_size][self._rows]


class _Normalise:
  """uint8 images -> float32 ``(x/255 - mean)/std``; without ``mean`` (event counts,
  synthetic images) -> float32 as they are."""

  def __init__(self, info: DatasetInfo) -> None:
    self._normalise = info.mean is not None
    if self._normalise:
      std = np.asarray(info.std, np.float32)
      self._scale = 1.0 / (255.0 * std)
      self._shift = -np.asarray(info.mean, np.float32) / std

  def __call__(self, batch: Batch) -> Batch:
    image = batch["image"].astype(np.float32)
    if self._normalise:  # in place: one pass per operation, no temporaries
      image *= self._scale
      image += self._shift
    return {**batch, "image": image}


def _clear_padding(batch: Batch) -> Batch:
  """Zeros in the padding rows (``mask`` false) of a batch."""
  batch["image"][~batch["mask"]] = 0
  return batch


def num_batches(source: Sized, *, batch_size: int, train: bool) -> int:
  """Batches per epoch: ``len // batch_size`` in training, ``ceil(len / batch_size)`` in eval."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  n = len(source)
  return n // batch_size if train else -(-n // batch_size)


def batch_dataset(
  source: RecordSource,
  *,
  batch_size: int,
  seed: int,
  epoch: int,
  train: bool,
  augmentation: Augmentation | None = None,
  rows: slice | None = None,
) -> grain.MapDataset:
  """The epoch's batches as a grain ``MapDataset`` (``ds[k]`` is batch ``k``).

  Args:
      source: a split (e.g. ``load(...)["train"]``); its ``info`` says how to normalise,
          augment and crop.
      batch_size: global batch size B (over all devices of all processes).
      seed: the run's data seed.
      epoch: the epoch, 0-based.
      train: shuffle, augment and drop the last partial batch (``True``), or keep the
          order, pad the last batch and add ``mask`` (``False``).
      augmentation: the training crop and flip (None: ``source.info.augmentation``).
      rows: the rows of each global batch to read (a process's share; default all).
          Only these records are read and augmented; the values do not depend on
          ``rows``.

  Returns:
      A ``grain.MapDataset`` of batches.
  """
  info = source.info
  if train and len(source) < batch_size:
    raise ValueError(f"{len(source)} training records cannot fill one batch of {batch_size}")
  augmentation = info.augmentation if augmentation is None else augmentation
  if augmentation.crop_padding < 0:
    raise ValueError(f"crop_padding must be >= 0, got {augmentation.crop_padding}")
  rows = slice(0, batch_size) if rows is None else rows
  ds = index_batches(
    len(source), batch_size=batch_size, seed=seed, epoch=epoch, train=train, rows=rows
  )
  ds = ds.map(_Fetch(source, mask=not train))
  if train and info.train_crop is not None:
    per_record = _RandomPerRecord(info.train_crop, batch_size, rows)
    ds = ds.random_map(per_record, seed=_derive_seed(seed, epoch, 2))
  elif not train and info.eval_crop is not None:
    ds = ds.map(_PerRecord(info.eval_crop))
  else:
    ds = ds.map(_stack)
  if train and augmentation != Augmentation():
    ds = ds.random_map(_Augment(augmentation, batch_size, rows), seed=_derive_seed(seed, epoch, 1))
  ds = ds.map(_Normalise(info))
  return ds if train else ds.map(_clear_padding)


def make_batches(
  source: RecordSource,
  *,
  batch_size: int,
  seed: int,
  epoch: int,
  train: bool,
  start_batch: int = 0,
  augmentation: Augmentation | None = None,
  rows: slice | None = None,
  num_threads: int = 0,
) -> Iterator[Batch]:
  """Iterates the batches ``start_batch, start_batch + 1, ...`` of one epoch.

  Batch ``k`` of epoch ``e`` depends only on ``(seed, e, k)`` (and the data), so
  resuming with ``start_batch=k`` gives exactly the batches an uninterrupted run sees.

  Args:
      source: a split (e.g. ``load(...)["train"]``), with the data set's ``info``.
      batch_size: global batch size B.
      seed: the run's data seed.
      epoch: the epoch, 0-based.
      train: training (shuffled, augmented, full batches) or eval (ordered, padded, masked).
      start_batch: the first batch to yield (0 <= start_batch <= number of batches).
      augmentation: the training crop and flip (None: ``source.info.augmentation``).
      rows: the rows of each global batch to read (see `batch_dataset`).
      num_threads: 0 reads in the calling thread; n > 0 reads and transforms ahead with
          n grain threads (same batches, same order).

  Returns:
      An iterator of ``{"image": float32, "label": int32}`` batches (plus ``mask`` bool
      in eval).

  Raises:
      ValueError: a bad ``batch_size`` or ``start_batch``, too few records, or a
          negative ``crop_padding``.
      CorruptDatasetError: (while iterating) a record's floating input holds NaN or inf;
          the message names the record.
  """
  ds = batch_dataset(
    source,
    batch_size=batch_size,
    seed=seed,
    epoch=epoch,
    train=train,
    augmentation=augmentation,
    rows=rows,
  )
  return iterate(ds, start_batch=start_batch, num_threads=num_threads)


def iterate(ds: grain.MapDataset, *, start_batch: int = 0, num_threads: int = 0) -> Iterator[Batch]:
  """The elements ``start_batch, ...`` of ``ds``, read ahead by ``num_threads`` threads if > 0."""
  if not 0 <= start_batch <= len(ds):
    raise ValueError(f"start_batch must be in [0, {len(ds)}], got {start_batch}")
  ds = ds[start_batch:]
  if num_threads:
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=2 * num_threads)
    return iter(ds.to_iter_dataset(options))
  # A map dataset whose transforms drop nothing has an element at every index.
  return (cast(Batch, ds[k]) for k in range(len(ds)))
