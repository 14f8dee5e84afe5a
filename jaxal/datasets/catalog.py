"""The datasets of the paper and the project's own, by name (METHOD.md sections 1-2).

Targets: food101, cifar100, imn100 (100 ImageNet classes, list shipped in
`imn100_classes.txt`), mit67 (project builder, manual files). Source:
imagenet_source (the other 900 ILSVRC-2012 classes). Offline: offline_source and
offline_target (generated, `procedural`). Tiny real option: digits
(scikit-learn's bundled 8x8 digits, upsampled).

TensorFlow and TFDS are imported inside the functions that need them, never at
import time. The offline parts and digits load without TensorFlow through
`load_arrays` (the offline builder stores exactly the generated pixels, PNG
being lossless, so both routes give identical arrays).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

from jaxal.datasets import procedural


class DatasetNotFoundError(FileNotFoundError):
  """A dataset is neither prepared in data_dir nor preparable here."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  name: str
  tfds_name: Optional[str]
  num_classes: int
  tfds_splits: tuple  # TFDS split names of our ("train", "test")
  image_size: int  # training resolution of the paper's setting
  balanced_per_class: Optional[int]  # supplement section 2
  target_model: Optional[str]  # METHOD.md section 5 default
  how_to_get: str


MIT67_FILES = ("indoorCVPR_09.tar", "TrainImages.txt", "TestImages.txt")
MIT67_INSTRUCTIONS = f"""\
MIT-67 (Quattoni and Torralba, CVPR 2009) is not downloadable by TFDS. Get
{MIT67_FILES[0]} (the images) and the official split lists {MIT67_FILES[1]} and
{MIT67_FILES[2]} from https://web.mit.edu/torralba/www/indoor.html and put the
three files, unchanged, in the manual directory
(DATA_DIR/downloads/manual/ unless --manual_dir says otherwise), then run
with --download once to prepare it (no network needed for this step)."""
_TFDS_BUILD = ("Prepare it on a machine with network access with `tfds build {t} "
               "--data_dir=DATA_DIR` (or pass --download there), then copy DATA_DIR "
               "here and pass --data_dir=DATA_DIR.")
_IMAGENET = ("ImageNet (ILSVRC-2012) needs a manual download: put ILSVRC2012_img_train.tar "
             "and ILSVRC2012_img_val.tar from https://image-net.org/download-images in "
             "DATA_DIR/downloads/manual/, then run with --download once to prepare it "
             "(no network needed for this step).")

SPECS = {s.name: s for s in (
    DatasetSpec("food101", "food101", 101, ("train", "validation"), 224, 200,
                "finetune", _TFDS_BUILD.format(t="food101")),
    DatasetSpec("cifar100", "cifar100", 100, ("train", "test"), 32, 200, "svm",
                _TFDS_BUILD.format(t="cifar100")),
    DatasetSpec("imn100", "imagenet2012", 100, ("train", "validation"), 224, 200,
                "svm", _IMAGENET),
    DatasetSpec("imagenet_source", "imagenet2012", 900, ("train", "validation"), 224,
                None, None, _IMAGENET),
    DatasetSpec("mit67", "jaxal_mit67", 67, ("train", "test"), 224, 80, "finetune",
                MIT67_INSTRUCTIONS),
    DatasetSpec("offline_source", "jaxal_offline", 0, ("train", "test"), 32, None,
                None, "generated on first use; nothing to download"),
    DatasetSpec("offline_target", "jaxal_offline", 0, ("train", "test"), 32, 200,
                "svm", "generated on first use; nothing to download"),
    DatasetSpec("digits", None, 10, ("train", "test"), 32, None, "svm",
                "bundled with scikit-learn"),
)}
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class ArraySplit:
  """One split in memory: images [N, H, W, 3] uint8, labels [N] int64."""
  images: np.ndarray
  labels: np.ndarray
  num_classes: int
  class_names: tuple


def spec(name: str) -> DatasetSpec:
  if name not in SPECS:
    raise ValueError(f"dataset must be one of {', '.join(SPECS)}; got {name!r}.")
  return SPECS[name]


def num_classes(name: str, offline: Optional[procedural.OfflineConfig] = None) -> int:
  s = spec(name)
  if s.name.startswith("offline_"):
    return (offline or procedural.OfflineConfig()).num_classes(_offline_part(name))
  return s.num_classes


def imn100_classes() -> list[str]:
  """The WordNet ids of IMN-100's classes (shipped, see the file's header)."""
  path = os.path.join(os.path.dirname(__file__), "imn100_classes.txt")
  with open(path) as f:
    return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


def _offline_part(name):
  return name.split("_", 1)[1]


def _check_split(split):
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")


def _imagenet_wnids(name: str) -> tuple[list[str], list[str]]:
  """(all 1000 ILSVRC wnids in label order, the wnids of `name` in that order):
  IMN-100's shipped classes for imn100, the other 900 for imagenet_source."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  wnids = tfds.builder("imagenet2012").info.features["label"].names
  keep = set(imn100_classes())
  missing = keep - set(wnids)
  if missing:
    raise ValueError(f"imn100_classes.txt names unknown classes {sorted(missing)[:3]}.")
  return wnids, [w for w in wnids if (w in keep) == (name == "imn100")]


def _imagenet_label_map(name: str) -> np.ndarray:
  """[1000] new label of each ILSVRC label for imn100/imagenet_source, -1 = drop."""
  wnids, chosen = _imagenet_wnids(name)
  new = {w: i for i, w in enumerate(chosen)}
  return np.array([new.get(w, -1) for w in wnids], np.int64)


def builder(name: str, *, data_dir: Optional[str] = None,
            offline: Optional[procedural.OfflineConfig] = None):
  """The TFDS builder behind dataset `name` (imports TFDS)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  s = spec(name)
  if s.tfds_name is None:
    raise ValueError(f"{name} is not a TFDS dataset; use load_arrays({name!r}, ...).")
  if s.tfds_name in ("jaxal_offline", "jaxal_mit67"):
    from jaxal.datasets import builders  # pylint: disable=g-import-not-at-top
    if s.tfds_name == "jaxal_mit67":
      return builders.JaxalMit67(data_dir=data_dir)
    cfg = builders.offline_builder_config(offline or procedural.OfflineConfig(),
                                          _offline_part(name))
    known = {c.name for c in builders.JaxalOffline.BUILDER_CONFIGS}
    return builders.JaxalOffline(config=cfg.name if cfg.name in known else cfg,
                                 data_dir=data_dir)
  return tfds.builder(s.tfds_name, data_dir=data_dir)


def load(name: str, split: str, *, data_dir: Optional[str] = None,
         download: bool = False, manual_dir: Optional[str] = None,
         offline: Optional[procedural.OfflineConfig] = None, decode: bool = True):
  """A `tf.data.Dataset` of {"image": uint8 [H, W, 3], "label": int64} in the
  split's fixed order (files not shuffled), labels in [0, num_classes).

  Args:
    name: a key of SPECS.
    split: "train" (the pool / source training set) or "test".
    data_dir: TFDS data directory (default: TFDS's, ~/tensorflow_datasets).
    download: download (or prepare from `manual_dir`) when not prepared.
    manual_dir: where manually downloaded archives are (ImageNet, MIT-67);
      default DATA_DIR/downloads/manual.
    offline: sizes of the offline dataset (offline_* only).
    decode: False leaves images as encoded bytes (fast label scans).

  Raises:
    DatasetNotFoundError: not prepared and `download` is False or preparing
      failed, with what to download and where to put it.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  s = spec(name)
  _check_split(split)
  b = builder(name, data_dir=data_dir, offline=offline)
  if name.startswith("offline_"):
    b.download_and_prepare()  # generation only; no network
  elif download:
    try:
      b.download_and_prepare(download_config=tfds.download.DownloadConfig(
          manual_dir=manual_dir))
    except (AssertionError, FileNotFoundError, OSError) as e:
      raise DatasetNotFoundError(f"could not prepare {name} in {b.data_dir}: {e}\n"
                                 f"{s.how_to_get}") from e
  decoders = None if decode else {"image": tfds.decode.SkipDecoding()}
  try:
    ds = b.as_dataset(split=s.tfds_splits[SPLITS.index(split)], shuffle_files=False,
                      decoders=decoders,
                      read_config=tfds.ReadConfig(shuffle_seed=0, interleave_cycle_length=1))
  except AssertionError as e:
    raise DatasetNotFoundError(
        f"dataset {name} ({s.tfds_name}) is not prepared in {b.data_dir}. "
        f"{s.how_to_get}") from e
  ds = ds.map(lambda ex: {"image": ex["image"], "label": ex["label"]})
  if name in ("imn100", "imagenet_source"):
    table = tf.constant(_imagenet_label_map(name))
    ds = ds.map(lambda ex: {"image": ex["image"], "label": tf.gather(table, ex["label"])})
    ds = ds.filter(lambda ex: ex["label"] >= 0)
  return ds


def load_labels(name: str, split: str, **kwargs) -> np.ndarray:
  """The labels of a split in order, without decoding images."""
  if name == "digits" or (name.startswith("offline_") and not _has_tfds()):
    return load_arrays(name, split, **kwargs).labels
  ds = load(name, split, decode=False, **kwargs).map(lambda ex: ex["label"])
  parts = list(ds.batch(65536).as_numpy_iterator())  # no per-example Python work
  return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def _has_tfds() -> bool:
  try:
    import tensorflow_datasets  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def _digits(split: str, image_size: int) -> ArraySplit:
  """scikit-learn's 1797 bundled 8x8 digits: 2/3 train, 1/3 test (stratified,
  fixed seed), grey levels 0-16 scaled to 0-255, replicated to RGB, and
  upsampled by nearest neighbour to `image_size`."""
  from sklearn import datasets as skd  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top
  d = skd.load_digits()
  idx = train_test_split(np.arange(len(d.target)), test_size=1 / 3, random_state=0,
                         stratify=d.target)[SPLITS.index(split)]
  img = np.round(d.images[np.sort(idx)] * (255 / 16)).astype(np.uint8)
  rep = max(1, image_size // 8)
  img = np.repeat(np.repeat(img, rep, 1), rep, 2)
  pad = image_size - img.shape[1]
  if pad > 0:
    img = np.pad(img, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2)))
  return ArraySplit(np.repeat(img[..., None], 3, -1),
                    d.target[np.sort(idx)].astype(np.int64), 10,
                    tuple(str(i) for i in range(10)))


def load_arrays(name: str, split: str, *, data_dir: Optional[str] = None,
                download: bool = False, manual_dir: Optional[str] = None,
                offline: Optional[procedural.OfflineConfig] = None,
                image_size: Optional[int] = None) -> ArraySplit:
  """A whole split in memory, for the 32 px datasets (offline, CIFAR-100,
  digits) or for any dataset when `image_size` resizes it (shorter side to
  `image_size`, centre crop; see `pipeline.eval_transform`)."""
  s = spec(name)
  _check_split(split)
  if name == "digits":
    return _digits(split, image_size or 32)
  if name.startswith("offline_"):
    cfg = offline or procedural.OfflineConfig()
    part = _offline_part(name)
    if not _has_tfds():
      images, labels = procedural.generate(cfg, part, split)
      return ArraySplit(images, labels, cfg.num_classes(part),
                        tuple(procedural.class_names(cfg, part)))
  ds = load(name, split, data_dir=data_dir, download=download, manual_dir=manual_dir,
            offline=offline)
  if image_size is not None or s.image_size != 32:
    from jaxal.datasets import pipeline  # pylint: disable=g-import-not-at-top
    size = image_size or s.image_size
    ds = ds.map(lambda ex: {"image": pipeline.eval_transform(ex["image"], size),
                            "label": ex["label"]})
  images, labels = [], []
  for ex in ds.batch(1024).as_numpy_iterator():
    images.append(ex["image"])
    labels.append(ex["label"])
  names = _class_names(name, offline)
  return ArraySplit(np.concatenate(images), np.concatenate(labels).astype(np.int64),
                    len(names), tuple(names))


def _class_names(name, offline):
  if name.startswith("offline_"):
    return procedural.class_names(offline or procedural.OfflineConfig(),
                                  _offline_part(name))
  if name in ("imn100", "imagenet_source"):
    return _imagenet_wnids(name)[1]
  if name == "mit67":
    from jaxal.datasets import builders  # pylint: disable=g-import-not-at-top
    return list(builders.MIT67_CLASSES)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds.builder(spec(name).tfds_name).info.features["label"].names
