"""TFDS builders written in the project: the offline dataset and MIT-67.

Imported only by `jaxal.datasets` inside its functions (it imports TFDS at the
top, and defining the classes registers them with TFDS as "jaxal_offline" and
"jaxal_mit67").
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf
import tensorflow_datasets as tfds

from jaxal.datasets import mit67, procedural
from jaxal.errors import InputError


@dataclasses.dataclass
class OfflineBuilderConfig(tfds.core.BuilderConfig):
  """One part of the offline dataset at given sizes (see `procedural`)."""
  offline: procedural.OfflineConfig = procedural.OfflineConfig()
  part: str = "source"


def offline_builder_config(config: procedural.OfflineConfig,
                           part: str) -> OfflineBuilderConfig:
  """The builder config of `part` at `config`; its name encodes the sizes, so
  datasets of different sizes live side by side in one data_dir."""
  config.validate()
  if config == procedural.OfflineConfig():
    name = part
  else:
    fields = [str(getattr(config, f.name)) for f in dataclasses.fields(config)]
    name = f"{part}_" + "_".join(fields)
  return OfflineBuilderConfig(name=name, offline=config, part=part,
                              description=f"{part} part, {config}")


class JaxalOffline(tfds.core.GeneratorBasedBuilder):
  """Procedural offline images (jaxal.datasets.procedural); no download."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  BUILDER_CONFIGS = [offline_builder_config(procedural.OfflineConfig(), p)
                     for p in procedural.PARTS]

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    size = cfg.offline.image_size
    return self.dataset_info_from_configs(
        description=procedural.__doc__.split("\n\n")[1],
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
            "label": tfds.features.ClassLabel(
                names=procedural.class_names(cfg.offline, cfg.part)),
        }),
        supervised_keys=("image", "label"),
        disable_shuffling=True)  # stored in generation order, as `generate` returns

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {s: self._generate_examples(s) for s in procedural.SPLITS}

  def _generate_examples(self, split):
    cfg = self.builder_config
    images, labels = procedural.generate(cfg.offline, cfg.part, split)
    for i in range(labels.size):
      yield i, {"image": images[i], "label": int(labels[i])}


class JaxalMit67(tfds.core.GeneratorBasedBuilder):
  """MIT-67 indoor scenes with the official train/test lists (80/20 per class)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = mit67.INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description="MIT Indoor Scenes (67 classes), official split.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "label": tfds.features.ClassLabel(names=mit67.CLASSES),
            "file_name": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://web.mit.edu/torralba/www/indoor.html")

  def _split_generators(self, dl_manager):
    manual = dl_manager.manual_dir
    missing = [f for f in mit67.FILES if not os.path.exists(os.path.join(manual, f))]
    if missing:
      raise FileNotFoundError(f"MIT-67: {', '.join(missing)} not found in {manual}.\n"
                              + mit67.INSTRUCTIONS)
    lists = {}
    for split, fname in (("train", mit67.FILES[1]), ("test", mit67.FILES[2])):
      with open(os.path.join(manual, fname)) as f:
        lists[split] = [ln.strip() for ln in f if ln.strip()]
      unknown = {p.split("/")[0] for p in lists[split]} - set(mit67.CLASSES)
      if unknown:
        raise InputError(f"MIT-67: {fname} names classes {sorted(unknown)[:5]} that "
                         "are not MIT-67's 67 classes; is it the official list?")
    archive = os.path.join(manual, mit67.FILES[0])
    return {split: self._generate_examples(dl_manager.iter_archive(archive), names)
            for split, names in lists.items()}

  def _generate_examples(self, archive, names):
    wanted = set(names)
    found = set()
    for path, fobj in archive:
      rel = path.split("Images/", 1)[-1]
      if rel not in wanted:
        continue
      # Some MIT-67 files are GIF or PNG under a .jpg name: decode every file and
      # let TFDS re-encode it as JPEG, so readers can always decode_jpeg.
      image = tf.io.decode_image(fobj.read(), channels=3, expand_animations=False)
      found.add(rel)
      yield rel, {"image": image.numpy(), "label": rel.split("/")[0], "file_name": rel}
    missing = wanted - found
    if missing:
      raise InputError(f"MIT-67: {len(missing)} listed images are not in the archive, "
                       f"e.g. {sorted(missing)[0]}; the archive is incomplete.")

