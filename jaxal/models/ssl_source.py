"""A self-supervised source work directory: SimCLR on a pool, features only.

`pretrain_workdir` trains `jaxal.models.simclr.SimCLR` on a pool's images
(labels never read) into a directory laid out like a `train_source` run::

    WORKDIR/config.json      {"kind": "simclr", arch, width, stem, image_size,
                              the SimCLR config, the images' digest}
    WORKDIR/checkpoints/     orbax: the last two epochs (resume), snapshots
    WORKDIR/result.json      the last epoch's loss, images/s, seconds

`jaxal.models.source.load_workdir` reads it back as a source whose model is the
encoder alone (`ResNet(num_classes=0)`): `jaxal embed` and the experiments use
it like any other source, with features and no probabilities (so the
uncertainty methods, which need M_S's source-class probabilities, refuse it),
and one model (SimCLR's snapshots are not an ensemble: their feature spaces
are not aligned, so averaging them means nothing).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Callable, Optional

import numpy as np

from jaxal import io
from jaxal.models import augment, resnet, simclr
from jaxal.models.checkpoint import Snapshots
from jaxal.errors import InputError

KIND = simclr.KIND


def images_digest(images: np.ndarray) -> str:
  """A short digest of uint8 pixels (what the run was trained on)."""
  h = hashlib.sha256(str(images.shape).encode())
  h.update(np.ascontiguousarray(images).tobytes())
  return h.hexdigest()[:16]


def run_config(images: np.ndarray, *, width: int, stem: str, arch: str,
               config: simclr.SimCLRConfig, images_id: Optional[str] = None) -> dict:
  """config.json of a pretraining run: what determines its weights."""
  return {"kind": KIND, "arch": arch, "width": int(width), "stem": stem,
          "image_size": int(images.shape[1]), "num_images": int(images.shape[0]),
          "images": images_id or images_digest(images),
          "epochs": config.epochs,
          # as JSON gives it back (tuples as lists), so that it compares equal
          "simclr": json.loads(json.dumps(dataclasses.asdict(config)))}


def pretrain_workdir(images, workdir: str, *, width: int = 64, stem: str = "cifar",
                     arch: str = "resnet18",
                     config: simclr.SimCLRConfig = simclr.SimCLRConfig(),
                     images_id: Optional[str] = None,
                     log: Optional[Callable[[dict], None]] = None,
                     stop_after_steps: Optional[int] = None) -> dict:
  """Trains SimCLR on uint8 `images` into `workdir` (resuming a killed run);
  returns its result.json. A workdir holding a run of another config (or of
  other images) is refused naming the difference."""
  images = simclr.check_images(images)
  if arch not in resnet.ARCHS:
    raise InputError(f"arch must be one of {tuple(resnet.ARCHS)}, got {arch!r}.")
  if stem not in resnet.STEMS:
    raise InputError(f"stem must be one of {resnet.STEMS}, got {stem!r}.")
  if width < 1:
    raise InputError(f"width must be >= 1, got {width}.")
  config.validate(num_images=images.shape[0])
  cfg = run_config(images, width=width, stem=stem, arch=arch, config=config,
                   images_id=images_id)
  path = os.path.join(workdir, "config.json")
  old = io.read_json(path)
  if old is not None and old != cfg:
    diff = sorted(k for k in set(old) | set(cfg) if old.get(k) != cfg.get(k))
    raise InputError(f"workdir {workdir} holds a pretraining run of another "
                     f"setting ({', '.join(diff)} differ); use a new workdir.")
  io.write_json(path, cfg)
  done = io.read_json(os.path.join(workdir, "result.json"))
  if done is not None:
    return done
  net = simclr.SimCLR(width=width, stem=stem, arch=arch)
  last: dict = {}

  def record(m):
    last.update(m)
    (log or simclr._print_progress)(m)  # pylint: disable=protected-access

  t0 = time.perf_counter()
  simclr.pretrain(net, images, config, log=record, stop_after_steps=stop_after_steps,
                  workdir=os.path.abspath(os.path.join(workdir, "checkpoints")))
  result = {"loss": last.get("loss"), "images_per_second": last.get(
      "images_per_second"), "seconds": time.perf_counter() - t0,
            "epochs": config.epochs}
  io.write_json(os.path.join(workdir, "result.json"), result)
  return result


def load(workdir: str, cfg: dict):
  """(encoder module, final encoder variables) of a finished run in `workdir`
  (`cfg` its config.json); ValueError naming the directory otherwise."""
  sc = dict(cfg["simclr"])
  aug = augment.AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in sc.pop("augment").items()})
  config = simclr.SimCLRConfig(**sc, augment=aug)
  net = simclr.SimCLR(width=cfg["width"], stem=cfg["stem"], arch=cfg["arch"])
  size = int(cfg["image_size"])
  template = simclr.create_state(net, config, (size, size, 3))
  ckpt = os.path.join(os.path.abspath(workdir), "checkpoints")
  found = Snapshots(ckpt, config.snapshot_every).restore_latest(template)
  if found is None or found[0] < config.epochs:
    raise InputError(f"source {workdir}: SimCLR has not finished pretraining "
                     f"({'no checkpoint' if found is None else found[0]} of "
                     f"{config.epochs} epochs); rerun `jaxal pretrain` there.")
  return simclr.backbone(net, found[1])
