"""`jaxal pretrain`: SimCLR on your own unlabeled images -> a source for embed.

    jaxal pretrain --workdir=SSL --images=DIR [--epochs=200 --width=64]
    jaxal embed    --workdir=W --images=DIR --source=SSL
    jaxal select   --workdir=W --method=typiclust --budget=500

The cold-start functions' own setting (TypiClust, ProbCover: self-supervised
features of the pool itself). The images are decoded once at --image_size into
memory (N x size x size x 3 bytes: 100,000 images at 32 px are 307 MB, at 96 px
2.8 GB) and trained on without labels (`jaxal.models.simclr`); a killed run
started again with the same flags resumes from its last finished epoch.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import numpy as np

from jaxal.cli.workdir import WorkdirError
from jaxal.errors import InputError
from jaxal.datasets import images as images_lib
from jaxal.models import simclr, ssl_source


def load_images(images_dir: Optional[str], tfds: Optional[str],
                data_dir: Optional[str], size: int, log: Callable = print):
  """uint8 [N, size, size, 3] of a folder or a TFDS split; unreadable files are
  reported and skipped."""
  if bool(images_dir) == bool(tfds):
    raise WorkdirError("pass exactly one of --images (a folder) and --tfds "
                       "(NAME:SPLIT of a prepared TFDS dataset).")
  if size < 8:
    raise WorkdirError(f"--image_size must be >= 8, got {size}.")
  if tfds:
    from jaxal.cli import pixels  # pylint: disable=g-import-not-at-top
    src = pixels.tfds_images(tfds, data_dir, size)
    n = len(src.paths)
    parts = [b for _, b in src.stream(list(range(0, n, 1024)), 1024)]
    return np.concatenate(parts) if parts else np.zeros((0, size, size, 3), np.uint8)
  try:
    paths = images_lib.scan(images_dir)
  except InputError as e:
    raise WorkdirError(str(e)) from None
  x, ok, errors = images_lib.load_batch(images_dir, paths, size)
  for p, err in errors.items():
    log(f"pretrain: skipping unreadable image {os.path.join(images_dir, p)} ({err})")
  return x


def pretrain(workdir: str, *, images_dir: Optional[str], tfds: Optional[str],
             data_dir: Optional[str], image_size: int, width: int, stem: Optional[str],
             arch: str, config: simclr.SimCLRConfig, log: Callable = print) -> dict:
  """Loads the pool, trains SimCLR into `workdir`; returns its result."""
  if not workdir:
    raise WorkdirError("--workdir is required: where the pretrained source goes.")
  x = load_images(images_dir, tfds, data_dir, image_size, log)
  if len(x) < 2:
    raise WorkdirError(f"--images {images_dir or tfds}: {len(x)} readable image(s); "
                       "SimCLR needs at least 2 (and a batch of at least 2).")
  stem = stem or ("cifar" if image_size < 64 else "imagenet")
  if config.batch_size > len(x):
    raise WorkdirError(f"--batch_size={config.batch_size} exceeds the {len(x)} "
                       "images; lower it.")
  log(f"pretrain: SimCLR on {len(x)} images of {images_dir or tfds} at {image_size} "
      f"px, {arch} width {width}, {config.epochs} epochs, batch {config.batch_size}, "
      f"temperature {config.temperature} -> {workdir}")
  try:
    result = ssl_source.pretrain_workdir(x, workdir, width=width, stem=stem,
                                         arch=arch, config=config)
  except InputError as e:
    raise WorkdirError(str(e)) from None
  log(f"pretrain: done, loss {result['loss']:.4f}; use it as "
      f"`jaxal embed --source={workdir}`")
  return result
