"""Datasets: imbalance induction, balanced subsets, offline data, loaders, pipelines."""

import io
import os
import tarfile

import numpy as np
import pytest

from jaxal import datasets
from jaxal.datasets import pipeline, procedural

TINY = procedural.OfflineConfig(num_source_classes=6, num_target_classes=4,
                                source_train_per_class=8, source_test_per_class=2,
                                target_train_per_class=10, target_test_per_class=3)


# --- imbalance induction (method guide §2) ---------------------------------

def test_default_profile_has_imagenet_ratio():
  assert datasets.imbalance_ratio_of_counts(datasets.default_profile()) == \
      pytest.approx(0.813, abs=1e-6)


@pytest.mark.parametrize("k,avail", [(20, 300), (67, 80), (100, 500), (101, 750)])
@pytest.mark.parametrize("capping", ["power", "scale"])
def test_induction_hits_ratio_and_respects_availability(k, avail, capping):
  available = np.random.default_rng(k).integers(avail // 2, avail + 1, k)
  counts = datasets.imbalanced_counts(available, seed=3, capping=capping)
  assert counts.dtype == np.int64 and counts.shape == (k,)
  assert np.all(counts >= 1) and np.all(counts <= available)
  assert abs(datasets.imbalance_ratio_of_counts(counts) - 0.813) < 0.03


def test_induction_follows_a_given_profile():
  rng = np.random.default_rng(0)
  profile = rng.pareto(2.5, 5000) * 100 + 10  # heavier tail than the default
  target = datasets.imbalance_ratio_of_counts(profile)
  counts = datasets.imbalanced_counts(np.full(100, 1300), profile=profile)
  assert abs(datasets.imbalance_ratio_of_counts(counts) - target) < 0.03


def test_plain_binning_is_the_paper_procedure():
  # gamma = 1: counts are the normalised bin means x the mean availability,
  # scaled down by one factor ("scale") so that none exceeds availability.
  profile = np.arange(1, 401, dtype=float)
  counts = datasets.imbalanced_counts(np.full(4, 10_000), profile=profile,
                                      match_ratio=False, capping="scale", seed=0)
  means = datasets.bin_means(profile, 4)
  np.testing.assert_array_equal(np.sort(counts)[::-1],
                                np.round(means / means.max() * 10_000))
  clipped = datasets.imbalanced_counts(np.full(4, 10_000), profile=profile,
                                       match_ratio=False, capping="power", seed=0)
  np.testing.assert_array_equal(np.sort(clipped)[::-1], np.minimum(
      np.round(means / means.mean() * 10_000), 10_000))


def test_induction_seeded_and_profile_file(tmp_path):
  a = datasets.imbalanced_counts(np.full(30, 200), seed=1)
  assert np.array_equal(a, datasets.imbalanced_counts(np.full(30, 200), seed=1))
  assert not np.array_equal(a, datasets.imbalanced_counts(np.full(30, 200), seed=2))
  path = tmp_path / "profile.txt"
  np.savetxt(path, datasets.default_profile(300))
  b = datasets.imbalanced_counts(np.full(30, 200), profile=datasets.load_profile(
      str(path)), seed=1)
  assert abs(datasets.imbalance_ratio_of_counts(b) - 0.813) < 0.03


@pytest.mark.parametrize("bad,match", [
    (dict(available=np.array([10.0, 5.0])), "available"),
    (dict(available=np.array([10, 0])), "available"),
    (dict(available=np.full(5, 10), profile=[3.0, 2.0]), "profile"),
    (dict(available=np.full(2, 10), profile=[3.0, -1.0]), "profile"),
    (dict(available=np.full(2, 10), capping="nope"), "capping"),
])
def test_induction_errors_name_the_argument(bad, match):
  with pytest.raises(ValueError, match=match):
    datasets.imbalanced_counts(**bad)


def test_subsets_exact_counts_and_seeded():
  labels = np.random.default_rng(0).integers(0, 5, 2000)
  counts = np.array([3, 50, 0, 100, 7])
  idx = datasets.subset_indices(labels, counts, seed=4)
  np.testing.assert_array_equal(np.bincount(labels[idx], minlength=5), counts)
  assert np.all(np.diff(idx) > 0)
  np.testing.assert_array_equal(idx, datasets.subset_indices(labels, counts, seed=4))
  bal = datasets.balanced_indices(labels, 80, 5, seed=0)
  np.testing.assert_array_equal(np.bincount(labels[bal]), np.full(5, 80))
  with pytest.raises(ValueError, match="counts"):
    datasets.subset_indices(labels, np.array([1, 1, 1, 1, 5000]))
  assert datasets.BALANCED_PER_CLASS == {"food101": 200, "cifar100": 200,
                                         "imn100": 200, "mit67": 80}


# --- offline dataset ------------------------------------------------------------

def test_procedural_deterministic_and_parts_disjoint():
  a = procedural.generate(TINY, "source", "train")
  b = procedural.generate(TINY, "source", "train")
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert a[0].shape == (48, 32, 32, 3) and a[0].dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(a[1]), np.full(6, 8))
  src = {tuple(t) for t in procedural.class_triples(TINY, "source")}
  tgt = {tuple(t) for t in procedural.class_triples(TINY, "target")}
  assert not src & tgt
  # Shared primitives: every target shape, colour and texture occurs in the source
  # for the default sizes.
  d = procedural.OfflineConfig()
  s = procedural.class_triples(d, "source")
  for col in range(3):
    assert set(procedural.class_triples(d, "target")[:, col]) <= set(s[:, col])
  other = procedural.generate(procedural.OfflineConfig(**{**TINY.__dict__, "seed": 1}),
                              "source", "train")
  assert not np.array_equal(a[0], other[0])
  with pytest.raises(ValueError, match="num_source_classes"):
    procedural.OfflineConfig(num_source_classes=0).validate()


def test_offline_builder_stores_the_generated_pixels(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  for part in ("source", "target"):
    split = datasets.load_arrays(f"offline_{part}", "test", data_dir=str(tmp_path),
                                 offline=TINY)
    x, y = procedural.generate(TINY, part, "test")
    np.testing.assert_array_equal(split.images, x)
    np.testing.assert_array_equal(split.labels, y)
    assert split.num_classes == TINY.num_classes(part)
  np.testing.assert_array_equal(
      datasets.load_labels("offline_target", "train", data_dir=str(tmp_path),
                           offline=TINY),
      procedural.generate(TINY, "target", "train")[1])


def test_split_images_streamed_equal_the_arrays(tmp_path):
  """A streamed split (the offline builder through TFDS) gives the arrays'
  batches and takes, with repeats, any order, and a take spilled to an
  unlinked memory-mapped file; bad positions are refused by name."""
  pytest.importorskip("tensorflow_datasets")
  from jaxal.datasets import split_images  # pylint: disable=g-import-not-at-top
  x, _ = procedural.generate(TINY, "target", "train")
  rows = np.array([0, 3, 4, 9, 17, 21, 30, 39])
  kw = dict(split_size=len(x), data_dir=str(tmp_path), offline=TINY)
  whole = split_images.SplitImages.streamed("offline_target", "train",
                                            np.arange(len(x)), 32, **kw)
  some = whole.subset(rows)
  assert some.is_streamed and len(some) == len(rows) and some.image_shape == (32, 32, 3)
  np.testing.assert_array_equal(np.concatenate(list(some.batches(3))), x[rows])
  assert [len(b) for b in some.batches(3)] == [3, 3, 2]
  ask = np.array([5, 0, 5, 7, 2])
  np.testing.assert_array_equal(some.take(ask), x[rows][ask])
  spill = tmp_path / "spill"
  got = whole.take(ask, spill_dir=str(spill), max_bytes=0)
  assert isinstance(got, np.memmap) and os.listdir(spill) == []
  np.testing.assert_array_equal(got, x[ask])
  held = split_images.SplitImages.in_memory(x).subset(rows)
  np.testing.assert_array_equal(held.take(ask), some.take(ask))
  with pytest.raises(ValueError, match="positions must be"):
    some.take(np.array([len(rows)]))
  with pytest.raises(ValueError, match="positions must be increasing"):
    whole.subset(np.array([3, 1]))
  with pytest.raises(ValueError, match="rows must be increasing"):
    split_images.SplitImages.streamed("offline_target", "train", np.array([len(x)]),
                                      32, **kw)


_GENERATE = """
import sys
from jaxal.datasets import catalog, procedural
cfg = procedural.OfflineConfig(num_source_classes=6, num_target_classes=4,
                               target_train_per_class=200, target_test_per_class=3)
print(catalog.num_examples("offline_target", "train", data_dir=sys.argv[1],
                           offline=cfg))
"""


def test_two_processes_generate_one_offline_split(tmp_path):
  """Two processes asking for the same offline split in one data_dir at once
  (the hosts of a multi-host embed): one generates, the other waits and reads
  it (without the lock one of them failed renaming its copy into place)."""
  pytest.importorskip("tensorflow_datasets")
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
  procs = [subprocess.Popen([sys.executable, "-c", _GENERATE, str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for _ in range(2)]
  for p in procs:
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    assert out.strip().splitlines()[-1] == "800"


def test_digits_is_a_tiny_real_dataset():
  tr, te = datasets.load_arrays("digits", "train"), datasets.load_arrays("digits", "test")
  assert tr.images.shape[1:] == (32, 32, 3) and tr.images.dtype == np.uint8
  assert len(tr.labels) + len(te.labels) == 1797 and tr.num_classes == 10
  assert tr.images.max() == 255


# --- TFDS loaders ---------------------------------------------------------------

def test_missing_dataset_error_says_what_to_do(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(datasets.DatasetNotFoundError, match="tfds build cifar100"):
    datasets.load("cifar100", "train", data_dir=str(tmp_path))
  with pytest.raises(datasets.DatasetNotFoundError, match="ILSVRC2012_img_train.tar"):
    datasets.load("imn100", "train", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="dataset must be one of"):
    datasets.load("cifar10", "train")
  with pytest.raises(ValueError, match="split"):
    datasets.load_arrays("digits", "validation")


@pytest.mark.parametrize("name,classes", [("cifar100", 100), ("food101", 101)])
def test_tfds_loaders_on_mock_data(name, classes):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=12):
    ds = datasets.load(name, "train")
    exs = list(ds.as_numpy_iterator())
  assert len(exs) == 12
  assert set(exs[0]) == {"image", "label"}
  assert exs[0]["image"].dtype == np.uint8 and exs[0]["image"].shape[-1] == 3
  assert all(0 <= e["label"] < classes for e in exs)


def test_imagenet_split_into_imn100_and_source_on_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  wnids = datasets.imn100_classes()
  assert len(wnids) == 100 and len(set(wnids)) == 100
  with tfds.testing.mock_data(num_examples=300):
    raw = [int(e["label"]) for e in tfds.load("imagenet2012", split="train")
           .as_numpy_iterator()]
    imn = [int(e["label"]) for e in datasets.load("imn100", "train").as_numpy_iterator()]
    src = [int(e["label"]) for e in datasets.load("imagenet_source", "train")
           .as_numpy_iterator()]
  names = tfds.builder("imagenet2012").info.features["label"].names
  in_imn = [names[i] in set(wnids) for i in raw]
  assert len(imn) == sum(in_imn) and len(src) == len(raw) - len(imn)
  assert all(0 <= x < 100 for x in imn) and all(0 <= x < 900 for x in src)
  expected = [wnids.index(names[i]) for i, k in zip(raw, in_imn) if k]
  assert imn == expected  # order kept, labels remapped to IMN-100 indices


def _jpeg(rng, h=40, w=50):
  import tensorflow as tf
  img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
  return tf.io.encode_jpeg(img).numpy()


def test_mit67_builder_reads_the_manual_archive(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  from jaxal.datasets import mit67
  manual = tmp_path / "manual"
  manual.mkdir()
  rng = np.random.default_rng(0)
  files = {"train": ["kitchen/a.jpg", "bar/b.jpg", "kitchen/c.jpg"],
           "test": ["bar/d.jpg"]}
  with tarfile.open(manual / "indoorCVPR_09.tar", "w") as tar:
    for rel in files["train"] + files["test"] + ["bar/unlisted.jpg"]:
      data = _jpeg(rng)
      info = tarfile.TarInfo("Images/" + rel)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  (manual / "TrainImages.txt").write_text("\n".join(files["train"]) + "\n")
  (manual / "TestImages.txt").write_text("\n".join(files["test"]) + "\n")
  with pytest.raises(datasets.DatasetNotFoundError, match="indoorCVPR_09.tar"):
    datasets.load("mit67", "train", data_dir=str(tmp_path / "data"))
  ds = datasets.load("mit67", "train", data_dir=str(tmp_path / "data"), download=True,
                     manual_dir=str(manual))
  labels = sorted(int(e["label"]) for e in ds.as_numpy_iterator())
  k = mit67.CLASSES
  assert labels == sorted([k.index("kitchen"), k.index("bar"), k.index("kitchen")])
  assert len(k) == 67 and len(set(k)) == 67
  assert datasets.load_labels("mit67", "test", data_dir=str(tmp_path / "data")).tolist() \
      == [k.index("bar")]


# --- pipelines --------------------------------------------------------------------

def test_array_pipeline_shapes_determinism_and_share():
  x, y = procedural.generate(TINY, "source", "train")
  batches, steps = pipeline.array_train_batches(x, y, batch_size=16, seed=0)
  assert steps == 3
  a = list(batches(0))
  b = list(batches(0))
  c = list(batches(1))
  assert len(a) == 3 and a[0][0].shape == (16, 32, 32, 3) and a[0][0].dtype == np.float32
  np.testing.assert_array_equal(a[1][0], b[1][0])
  assert not np.array_equal(a[0][0], c[0][0])
  # Two processes split each global batch into disjoint halves.
  halves = [list(pipeline.array_train_batches(x, y, batch_size=16, seed=0,
                                              process_index=i, process_count=2)[0](0))
            for i in range(2)]
  for (x0, y0), (x1, y1), (_, yy) in zip(halves[0], halves[1], a):
    assert x0.shape[0] == 8
    np.testing.assert_array_equal(np.sort(np.concatenate([y0, y1])), np.sort(yy))
  with pytest.raises(ValueError, match="batch_size"):
    pipeline.array_train_batches(x, y, batch_size=6, seed=0)  # 4 local devices


def test_random_crop_flip_is_a_shifted_window():
  img = np.arange(2 * 6 * 6 * 3, dtype=np.uint8).reshape(2, 6, 6, 3)
  rng = np.random.default_rng(0)
  out = pipeline.random_crop_flip(img, rng, padding=0, flip=True)
  for o, i in zip(out, img):
    assert np.array_equal(o, i) or np.array_equal(o, i[:, ::-1])
  out = pipeline.random_crop_flip(img, np.random.default_rng(1), padding=2, flip=False)
  padded = np.pad(img, ((0, 0), (2, 2), (2, 2), (0, 0)))
  for o, p in zip(out, padded):
    assert any(np.array_equal(o, p[r:r + 6, c:c + 6]) for r in range(5) for c in range(5))


def test_tf_pipelines_crop_resize_and_cover(tmp_path):
  tf = pytest.importorskip("tensorflow")
  rng = np.random.default_rng(0)
  imgs = [rng.integers(0, 255, (40 + 4 * i, 56, 3), dtype=np.uint8) for i in range(10)]
  ds = tf.data.Dataset.from_generator(
      lambda: ({"image": im, "label": np.int64(i)} for i, im in enumerate(imgs)),
      output_signature={"image": tf.TensorSpec((None, None, 3), tf.uint8),
                        "label": tf.TensorSpec((), tf.int64)})
  batches, steps = pipeline.tf_train_batches(ds, image_size=24, batch_size=4, seed=0,
                                             num_examples=10, shuffle_buffer=10)
  out = list(batches(0))
  assert steps == 2 and len(out) == 2 and out[0][0].shape == (4, 24, 24, 3)
  again = list(batches(0))
  np.testing.assert_array_equal(out[0][0], again[0][0])
  ev = list(pipeline.tf_eval_batches(ds, image_size=24, batch_size=4))
  assert [b[0].shape[0] for b in ev] == [4, 4, 2]
  assert np.concatenate([b[1] for b in ev]).tolist() == list(range(10))


@pytest.mark.parametrize("call", [
    lambda s: datasets.imbalanced_counts(np.full(10, 50), seed=s),
    lambda s: datasets.subset_indices(np.arange(10) % 2, np.array([2, 2]), seed=s),
    lambda s: datasets.balanced_indices(np.arange(10) % 2, 2, 2, seed=s),
])
@pytest.mark.parametrize("seed", [None, -1, 2 ** 32, 0.5])
def test_bad_seed(call, seed):
  with pytest.raises(ValueError, match="seed must"):
    call(seed)
