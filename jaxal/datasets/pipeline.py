"""Input pipelines: random crop and flip for training, resize and centre crop for
evaluation, as numpy batches of this process's share of each global batch.

Two sources, one output format (what `jaxal.models.train.fit` and `jaxal.models.inference`
take): float32 [B, H, W, 3] images normalised by ImageNet's channel mean and std,
and int labels; B divisible by the local devices (`jaxal.models.train.shard` then
splits it per device without a copy).

- In-memory uint8 arrays (32 px datasets: offline, CIFAR-100, digits): numpy
  only, no TensorFlow; CIFAR-style augmentation (pad 4, random 32 crop, flip).
- A `tf.data.Dataset` from `catalog.load` (JPEG datasets at 224 px): decode,
  resize the shorter side to size/0.875, random crop and flip (train) or centre
  crop (eval), batched and prefetched by tf.data in parallel.

Both are deterministic in (seed, epoch): a resumed run sees the same batches.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

import jax
import numpy as np

from jaxal import _validation as V
from jaxal.errors import InputError

MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
CROP_FRACTION = 0.875  # eval: resize to size / 0.875, centre crop size

Batches = Iterator[tuple[np.ndarray, np.ndarray]]


def normalize(images: np.ndarray) -> np.ndarray:
  """uint8 [..., 3] -> float32 (x - mean) / std."""
  return (np.asarray(images, np.float32) - MEAN) / STD


def _check_batch(batch_size: int, process_count: int) -> int:
  per_process, rem = divmod(int(batch_size), process_count)
  if batch_size <= 0 or rem:
    raise InputError(f"batch_size={batch_size} must be a positive multiple of the "
                     f"{process_count} processes.")
  if per_process % jax.local_device_count():
    raise InputError(f"batch_size={batch_size} gives {per_process} per process, not "
                     f"divisible by the {jax.local_device_count()} local devices.")
  return per_process


def _check_arrays(images, labels):
  images = np.asarray(images)
  labels = np.asarray(labels)
  if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
    raise InputError("images must be uint8 [N, H, W, 3], got "
                     f"{images.dtype} {images.shape}.")
  if labels.shape != images.shape[:1]:
    raise InputError(f"labels must be [N={images.shape[0]}], got {labels.shape}.")
  return images, labels


def random_crop_flip(images: np.ndarray, rng: np.random.Generator, *,
                     padding: int = 4, flip: bool = True) -> np.ndarray:
  """Zero-pads by `padding`, crops back to the original size at a random offset
  per image, and flips half of the images left-right (vectorised gather)."""
  n, h, w, _ = images.shape
  if padding:
    images = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  dy = rng.integers(0, 2 * padding + 1, n)
  dx = rng.integers(0, 2 * padding + 1, n)
  rows = dy[:, None] + np.arange(h)[None]  # [n, h]
  cols = dx[:, None] + np.arange(w)[None]  # [n, w]
  if flip:
    flipped = rng.random(n) < 0.5
    cols = np.where(flipped[:, None], cols[:, ::-1], cols)
  return images[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def array_train_batches(images, labels, *, batch_size: int, seed: int,
                        padding: int = 4, flip: bool = True,
                        process_index: Optional[int] = None,
                        process_count: Optional[int] = None
                        ) -> tuple[Callable[[int], Batches], int]:
  """Training batches over in-memory arrays.

  Returns `(batches, steps_per_epoch)`: `batches(epoch)` yields this process's
  share (contiguous slice) of each global batch of a seeded permutation of
  the data, augmented; the last incomplete batch is dropped.
  """
  images, labels = _check_arrays(images, labels)
  seed = V.check_seed(seed)
  pc = jax.process_count() if process_count is None else process_count
  pi = jax.process_index() if process_index is None else process_index
  per_process = _check_batch(batch_size, pc)
  steps = images.shape[0] // batch_size
  if steps == 0:
    raise InputError(f"batch_size={batch_size} exceeds the {images.shape[0]} "
                     "training images; lower it.")

  def batches(epoch: int) -> Batches:
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(images.shape[0])
    for i in range(steps):
      start = i * batch_size + pi * per_process
      idx = np.sort(order[start:start + per_process])
      aug_rng = np.random.default_rng([seed, epoch, i, pi])
      x = random_crop_flip(images[idx], aug_rng, padding=padding, flip=flip)
      yield normalize(x), labels[idx]
  return batches, steps


def array_eval_batches(images, *, batch_size: int) -> Iterator[np.ndarray]:
  """Normalised images in order, in batches (the last one may be short;
  `jaxal.models.inference.predict` pads it)."""
  images = np.asarray(images)
  for start in range(0, images.shape[0], batch_size):
    yield normalize(images[start:start + batch_size])


# --- tf.data pipelines (TensorFlow imported inside the functions) -------------

def _resize_shorter(image, size):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  shape = tf.shape(image)
  h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  scale = tf.cast(size, tf.float32) / tf.minimum(h, w)
  new = tf.cast(tf.round(tf.stack([h * scale, w * scale])), tf.int32)
  new = tf.maximum(new, size)
  return tf.cast(tf.clip_by_value(tf.round(tf.image.resize(image, new, antialias=True)),
                                  0, 255), tf.uint8)


def eval_transform(image, size: int):
  """uint8 [H, W, 3] -> uint8 [size, size, 3]: identity when already that size,
  else shorter side to size / 0.875 and a centre crop (tf ops)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  shape = tf.shape(image)

  def resize_crop():
    img = _resize_shorter(image, int(round(size / CROP_FRACTION)))
    s = tf.shape(img)
    top, left = (s[0] - size) // 2, (s[1] - size) // 2
    return img[top:top + size, left:left + size]
  same = tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size))
  out = tf.cond(same, lambda: tf.cast(image, tf.uint8), resize_crop)
  return tf.ensure_shape(out, (size, size, 3))


def _train_transform(image, size, seed):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  img = _resize_shorter(image, int(round(size / CROP_FRACTION)))
  img = tf.image.stateless_random_crop(img, (size, size, 3), seed=seed)
  return tf.image.stateless_random_flip_left_right(img, seed=seed + 1)


def tf_train_batches(ds, *, image_size: int, batch_size: int, seed: int,
                     num_examples: int, shuffle_buffer: int = 10_000,
                     process_index: Optional[int] = None,
                     process_count: Optional[int] = None
                     ) -> tuple[Callable[[int], Batches], int]:
  """Training batches from a `catalog.load` dataset (any image size).

  Each process reads its shard of the examples (`ds.shard`), shuffles with a
  buffer seeded by (seed, epoch), crops and flips with stateless per-example
  seeds, and yields `batch_size / process_count` normalised images per step.
  Returns `(batches, steps_per_epoch)`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  pc = jax.process_count() if process_count is None else process_count
  pi = jax.process_index() if process_index is None else process_index
  per_process = _check_batch(batch_size, pc)
  steps = num_examples // batch_size
  if steps == 0:
    raise InputError(f"batch_size={batch_size} exceeds num_examples={num_examples}.")
  mean, std = tf.constant(MEAN), tf.constant(STD)

  def batches(epoch: int) -> Batches:
    d = ds.shard(pc, pi).enumerate()
    d = d.shuffle(shuffle_buffer, seed=seed * 100_003 + epoch,
                  reshuffle_each_iteration=False)
    d = d.repeat()  # shards may differ by one example; every process takes `steps`

    def aug(i, ex):
      s = tf.stack([tf.cast(seed * 7919 + epoch, tf.int64), i])
      img = _train_transform(ex["image"], image_size, s)
      return (tf.cast(img, tf.float32) - mean) / std, ex["label"]
    d = d.map(aug, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    d = d.batch(per_process, drop_remainder=True).take(steps)
    yield from d.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()
  return batches, steps


def tf_eval_batches(ds, *, image_size: int, batch_size: int) -> Batches:
  """(images, labels) of a `catalog.load` dataset in order, resized and
  centre-cropped; the last batch may be short."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  mean, std = tf.constant(MEAN), tf.constant(STD)
  d = ds.map(lambda ex: ((tf.cast(eval_transform(ex["image"], image_size), tf.float32)
                          - mean) / std, ex["label"]),
             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  yield from d.batch(batch_size).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()
