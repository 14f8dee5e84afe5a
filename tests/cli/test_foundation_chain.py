"""A foundation encoder through the whole command, on a tiny random SigLIP
checkpoint (the ViT goldens' seeded `siglip_tiny`, with a SentencePiece
tokenizer trained for the tests): import-source -> embed -> select (typiclust,
coreset, random) -> the labeling page -> train -> report; the uncertainty
methods and --ensemble refused by name; the features equal the model's on the
preprocessed images; and the text tower's image-text logits."""

import json
import os
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from jaxal import zeroshot
from jaxal.models import foundation, source, vit
from tests.cli import label_fixture as F
from tests.cli.test_cli import jaxal, ok, read_csv
from tests.conftest import ROOT  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "tests", "data"))
import vit_fixture as fx  # noqa: E402  pylint: disable=g-import-not-at-top

DATA = os.path.join(ROOT, "tests", "data", "vit")


@pytest.fixture(scope="module")
def siglip(tmp_path_factory):
  """(checkpoint folder with its tokenizer, imported source, labeling pool)."""
  base = tmp_path_factory.mktemp("siglip")
  with open(os.path.join(DATA, "layout.json")) as f:
    keys = json.load(f)["siglip_tiny"]["keys"]
  ckpt = str(base / "ckpt")
  fx.write_checkpoint("siglip_tiny", ckpt, keys)
  for name in os.listdir(os.path.join(DATA, "tok_siglip")):
    if name != "config.json":  # the checkpoint's own config.json stays
      shutil.copy(os.path.join(DATA, "tok_siglip", name), ckpt)
  src = str(base / "src")
  out = ok("import-source", f"--workdir={src}", "--arch=siglip", f"--weights={ckpt}")
  assert "siglip" in out and "with its text tower" in out, out
  wd, truth, classes = F.make(str(base / "pool"))
  return dict(ckpt=ckpt, src=src, images=os.path.join(str(base / "pool"), "images"),
              truth=truth, classes=classes)


def source_paths(wd):
  """The embedded images' paths, in the features' row order."""
  from jaxal.cli.workdir import Workdir  # pylint: disable=g-import-not-at-top
  return list(Workdir(wd).pool().paths)


def test_import_embed_select_label_train_report(siglip, tmp_path):
  wd = str(tmp_path / "wd")
  ok("embed", f"--workdir={wd}", f"--images={siglip['images']}",
     f"--source={siglip['src']}")
  emb = os.path.join(wd, "embedding")
  assert not os.path.exists(os.path.join(emb, "probs.npy"))  # an encoder
  feats = np.load(os.path.join(emb, "features.npy"))
  paths = source_paths(wd)
  assert feats.shape[1] == 32 and np.isfinite(feats).all()
  # the features are the image tower's on the checkpoint's own preprocessing
  trained = source.load_workdir(siglip["src"])
  prep = trained.preprocess
  assert prep.resize_to == 32 and prep.crop is None
  first = paths[0]
  with Image.open(os.path.join(siglip["images"], first)) as img:
    x = prep.pixel_values(img)[None]
  _, want = trained.model.apply(trained.final, x)
  np.testing.assert_allclose(feats[0], np.asarray(want)[0], rtol=1e-4, atol=1e-5)

  code, _, err = jaxal("select", f"--workdir={wd}", "--method=margin", "--budget=6")
  assert code == 2 and "margin" in err, err
  for method in ("typiclust", "coreset", "random"):
    ok("select", f"--workdir={wd}", f"--selection={method}", f"--method={method}",
       "--budget=6")
    assert len(read_csv(os.path.join(wd, "selections", method, "to_label.csv"))) == 6
  srv = F.Server(f"--workdir={wd}", f"--classes={siglip['classes']}",
                 "--method=coreset", "--budget=8", "--batch=2")
  try:
    from tests.cli.test_label import answer_all  # pylint: disable=g-import-not-at-top
    answer_all(srv, siglip["truth"], "ann", 8)
    assert srv.request("POST", "api/next", {"annotator": "ann"})[1].get("done")
  finally:
    srv.stop()
  labels = os.path.join(wd, "labels.csv")
  ok("train", f"--workdir={wd}", f"--labels={labels}", "--target=svm")
  ok("report", f"--workdir={wd}", f"--labels={labels}", "--plot=false")
  with open(os.path.join(wd, "report", "report.json")) as f:
    assert json.load(f)["labeled"] == 8
  code, _, err = jaxal("embed", f"--workdir={tmp_path / 'w2'}",
                       f"--images={siglip['images']}", f"--source={siglip['src']}",
                       "--ensemble")
  assert code == 2 and "--ensemble" in err, err


def test_text_tower_logits_are_the_towers_on_the_tokenizers_ids(siglip):
  tower = foundation.load_text(siglip["src"])
  texts = ["a photo of a cat.", "A Photo of a DOG!", "un oiseau très rare"]
  ids = tower.tokenizer.encode(texts)
  assert ids.shape == (3, 16)
  trained = source.load_workdir(siglip["src"])
  x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
  _, img = trained.model.apply(trained.final, x)
  got = foundation.image_text_logits(tower, img, texts)
  t = tower.model.apply(tower.variables, ids)
  want = vit.logits_per_image(img, t, tower.logit_scale, tower.logit_bias)
  np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-5)
  assert got.shape == (2, 3)
  # SigLIP v1 canonicalises text: case and punctuation do not change the ids
  np.testing.assert_array_equal(ids[0], tower.tokenizer.encode(["A PHOTO of a cat"])[0])


def test_a_source_without_tokenizer_files_says_so(siglip, tmp_path):
  bare = str(tmp_path / "bare")
  shutil.copytree(siglip["ckpt"], bare)
  for name in os.listdir(bare):
    if name not in ("config.json", "model.safetensors", "preprocessor_config.json"):
      os.remove(os.path.join(bare, name))
  src = str(tmp_path / "src")
  foundation.import_source("siglip", bare, src)
  with pytest.raises(ValueError, match="no tokenizer files"):
    foundation.load_text(src)


def test_the_experiments_normalise_with_the_encoders_statistics(siglip, tmp_path):
  """The tables' --source_workdir with a SigLIP source: M_S's outputs are
  computed on the checkpoint's own normalisation (mean and std 0.5), not
  jaxal's ImageNet-style statistics."""
  from jaxal.datasets import pipeline  # pylint: disable=g-import-not-at-top
  from jaxal.experiments import protocol  # pylint: disable=g-import-not-at-top
  proto = protocol.Protocol(protocol.Settings(data="real",
                                              source_workdir=siglip["src"]),
                            str(tmp_path / "w"), log=lambda m: None)
  src = proto.source_model()
  x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
  got = src.normalize(x)
  np.testing.assert_allclose(got, (x / 255.0 - 0.5) / 0.5, atol=1e-6)
  assert not np.allclose(got, pipeline.normalize(x))


def test_class_names_as_zero_shot_guesses(siglip, tmp_path):
  """embed --classes: the pool's probabilities are the normalised sigmoids of
  SigLIP's logits over the class prompts; the uncertainty methods then run and
  name the guessed target class; bad prompts, over-long names, imported
  features and labels with other classes are refused by file and line."""
  wd = str(tmp_path / "wd")
  names = tmp_path / "classes.txt"  # short: the tiny tower reads 16 tokens
  names.write_text("cat\ndog\nbird\nfish\n")
  prompts = tmp_path / "prompts.txt"
  prompts.write_text("# templates\na photo of a {}.\n\na blurry picture of the {}\n")
  ok("embed", f"--workdir={wd}", f"--images={siglip['images']}",
     f"--source={siglip['src']}", f"--classes={names}",
     f"--prompts={prompts}")
  classes = names.read_text().splitlines()
  probs = np.load(os.path.join(wd, "embedding", "probs.npy"))
  feats = np.load(os.path.join(wd, "embedding", "features.npy"))
  tower = foundation.load_text(siglip["src"])
  texts = [t.replace("{}", c) for c in classes
           for t in ("a photo of a {}.", "a blurry picture of the {}")]
  e = foundation.text_embeddings(tower, texts).astype(np.float64)
  e /= np.linalg.norm(e, axis=1, keepdims=True)
  cls = e.reshape(len(classes), 2, -1).mean(1)
  x = feats / np.linalg.norm(feats, axis=1, keepdims=True)
  cls /= np.linalg.norm(cls, axis=1, keepdims=True)
  lg = np.exp(tower.logit_scale) * x @ cls.T + tower.logit_bias
  s = 1 / (1 + np.exp(-lg))
  np.testing.assert_allclose(probs, s / s.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
  assert probs.shape == (48, len(classes))
  # one template: the guesses order the classes as SigLIP's own logits do
  one = [f"a photo of a {c}." for c in classes]
  got = zeroshot.probabilities(feats, zeroshot.ensemble(
      foundation.text_embeddings(tower, one), len(classes)), tower.logit_scale,
      tower.logit_bias)
  np.testing.assert_array_equal(np.argsort(got, 1),
                                np.argsort(foundation.image_text_logits(tower, feats, one), 1))
  ok("select", f"--workdir={wd}", "--method=margin_div", "--budget=8")
  rows = read_csv(os.path.join(wd, "to_label.csv"))
  assert all(r["predicted_name"] in classes for r in rows)
  assert [r["predicted_name"] for r in rows] == \
      [classes[k] for k in probs[[source_paths(wd).index(r["path"]) for r in rows]]
       .argmax(1)]
  # rerun: already written; other classes: refused
  assert "already written" in ok("embed", f"--workdir={wd}",
                                 f"--images={siglip['images']}",
                                 f"--source={siglip['src']}",
                                 f"--classes={names}", f"--prompts={prompts}")
  other = tmp_path / "other.txt"
  other.write_text("\n".join(reversed(classes)) + "\n")
  code, _, err = jaxal("label", f"--workdir={wd}", f"--classes={other}")
  assert code == 2 and "--classes" in err and "zero-shot" in err, err
  # refusals
  bad = tmp_path / "bad_prompts.txt"
  bad.write_text("a photo of a {}.\na photo without a slot\n")
  longer = tmp_path / "long.txt"
  longer.write_text("cat\n" + "very " * 20 + "long name\n")
  for args, words in (
      ((f"--source={siglip['src']}", f"--classes={names}",
        f"--prompts={bad}"), f"{bad}:2:"),
      ((f"--source={siglip['src']}", f"--classes={longer}"), f"{longer}:2:"),
      ((f"--features={os.path.join(wd, 'embedding', 'features.npy')}",
        f"--classes={names}"), "--classes"),
      ((f"--source={siglip['src']}", f"--prompts={prompts}"), "--prompts goes with")):
    code, _, err = jaxal("embed", f"--workdir={tmp_path / 'w2'}",
                         f"--images={siglip['images']}", *args)
    assert code == 2 and words in err, (args, err)


def test_the_balancing_step_follows_the_guesses_in_balance_and_on_the_page(
    siglip, tmp_path):
  """balance --guesses and label --guesses ask for exactly the batches of
  `balanced_select(guesses=the zero-shot probabilities)` with the same answers;
  --guesses without zero-shot guesses is refused."""
  from jaxal import acquisition, balancing  # pylint: disable=g-import-not-at-top
  from tests.cli.test_cli import write_csv  # pylint: disable=g-import-not-at-top
  names = tmp_path / "classes.txt"
  names.write_text("cat\ndog\nbird\nfish\n")
  classes = names.read_text().splitlines()
  truth = {p: ("fish" if c not in classes else c) for p, c in siglip["truth"].items()}
  wd = str(tmp_path / "wd")
  ok("embed", f"--workdir={wd}", f"--images={siglip['images']}",
     f"--source={siglip['src']}", f"--classes={names}")
  ok("select", f"--workdir={wd}", "--method=entropy", "--budget=12")
  paths = source_paths(wd)
  probs = np.load(os.path.join(wd, "embedding", "probs.npy"))
  feats = np.load(os.path.join(wd, "embedding", "features.npy"))
  y = np.array([classes.index(truth[p]) for p in paths])
  ranking = acquisition.ranking_to_balance("entropy", budget=12, probs=probs)
  want = balancing.balanced_select(ranking, feats, y, 12, 4, batch_size=3,
                                   guesses=probs, guess_weight=0.25)
  labels = tmp_path / "labels.csv"
  write_csv(labels, [])
  offered = []
  for _ in range(10):
    ok("balance", f"--workdir={wd}", f"--labels={labels}", f"--classes={names}",
       "--batch=3", "--guesses", "--guess_weight=0.25")
    batch = [r["path"] for r in read_csv(os.path.join(wd, "to_label.csv"))]
    if not batch:
      break
    offered += batch
    write_csv(labels, [[p, truth[p]] for p in offered])
  assert [paths.index(p) for p in offered] == want.tolist()
  # the page, on a named selection, picks the same
  ok("select", f"--workdir={wd}", "--selection=page", "--method=entropy",
     "--budget=12")
  srv = F.Server(f"--workdir={wd}", "--selection=page", f"--classes={names}",
                 "--batch=3", "--guesses", "--guess_weight=0.25")
  try:
    from tests.cli.test_label import answer_all  # pylint: disable=g-import-not-at-top
    done = answer_all(srv, truth, "ann", 12)
  finally:
    srv.stop()
  assert sorted(paths.index(p) for p in done) == sorted(want.tolist())
  # refusals: no zero-shot guesses; --guess_weight alone
  plain = str(tmp_path / "plain")
  ok("embed", f"--workdir={plain}", f"--images={siglip['images']}",
     f"--source={siglip['src']}")
  ok("select", f"--workdir={plain}", "--method=random", "--budget=6")
  empty = tmp_path / "empty.csv"
  write_csv(empty, [])
  code, _, err = jaxal("balance", f"--workdir={plain}", f"--labels={empty}",
                       f"--classes={siglip['classes']}", "--batch=3", "--guesses")
  assert code == 2 and "--guesses" in err and "zero-shot" in err, err
  code, _, err = jaxal("balance", f"--workdir={wd}", f"--labels={labels}",
                       f"--classes={names}", "--batch=3", "--guess_weight=1")
  assert code == 2 and "--guess_weight goes with --guesses" in err, err


def test_search_by_text_and_by_an_image_outside_the_pool(siglip, tmp_path):
  wd = str(tmp_path / "wd")
  ok("embed", f"--workdir={wd}", f"--images={siglip['images']}",
     f"--source={siglip['src']}")
  feats = np.load(os.path.join(wd, "embedding", "features.npy")).astype(np.float64)
  feats /= np.linalg.norm(feats, axis=1, keepdims=True)
  paths = source_paths(wd)
  tower = foundation.load_text(siglip["src"])
  q = foundation.text_embeddings(tower, ["a small red bird"])[0].astype(np.float64)
  ref = feats @ (q / np.linalg.norm(q))
  ok("search", f"--workdir={wd}", "--text=a small red bird", "--top=4")
  rows = read_csv(os.path.join(wd, "to_label.csv"))
  assert [r["path"] for r in rows] == [paths[i] for i in np.argsort(-ref, kind="stable")[:4]]
  # an image file outside the pool: embedded as the pool was, so a copy of a
  # pool image finds that image first
  outside = tmp_path / "copy.png"
  shutil.copy(os.path.join(siglip["images"], paths[5]), outside)
  ok("search", f"--workdir={wd}", f"--image={outside}", "--top=3")
  rows = read_csv(os.path.join(wd, "to_label.csv"))
  assert rows[0]["path"] == paths[5] and float(rows[0]["score"]) > 0.9999
  code, _, err = jaxal("search", f"--workdir={wd}", "--text=" + "word " * 40)
  assert code == 2 and "--text fills" in err, err


def test_the_experiments_zero_shot_rows_read_the_class_names_with_siglip(siglip,
                                                                         tmp_path):
  """Table 16 with a SigLIP source (here on the offline data, read at 28 pixels
  and resized to the tiny tower's 32): the pool's zero-shot probabilities are
  the normalised sigmoids of the image tower's embeddings of the resized,
  normalised pool against the text tower's prompt-ensembled class names."""
  import jax  # pylint: disable=g-import-not-at-top
  from jaxal.datasets import images as images_lib  # pylint: disable=g-import-not-at-top
  from jaxal.datasets import catalog, procedural  # pylint: disable=g-import-not-at-top
  from jaxal.experiments import protocol  # pylint: disable=g-import-not-at-top
  from jaxal.models import inference  # pylint: disable=g-import-not-at-top
  offline = procedural.OfflineConfig(
      num_source_classes=4, num_target_classes=3, num_far_classes=3,
      source_train_per_class=8, source_test_per_class=1, target_train_per_class=12,
      target_test_per_class=2, far_train_per_class=12, far_test_per_class=2,
      image_size=28)
  prompts = ("a {}", "the {} .")
  settings = protocol.Settings(offline=offline, zeroshot=protocol.ZeroShotSettings(
      source=siglip["src"], prompts=prompts))
  proto = protocol.Protocol(settings, str(tmp_path / "w"), log=lambda m: None)
  got = proto.zeroshot_probs("offline_target", "imbalanced")
  pool = proto.pool("offline_target", "imbalanced")
  trained = source.load_workdir(siglip["src"])
  norm = images_lib.normalizer(trained.preprocess)
  x = np.asarray(pool.images.take(np.arange(len(pool.labels))))
  assert x.shape[1] == 28
  resized = np.asarray(jax.image.resize(norm(x).astype(np.float32),
                                        (len(x), 32, 32, 3), "bilinear"))
  feats = inference.predict(trained.model, trained.final, resized)[0]
  names = [n.replace("_", " ") for n in catalog.class_names("offline_target", offline)]
  tower = foundation.load_text(siglip["src"])
  want = zeroshot.probabilities(feats, zeroshot.ensemble(foundation.text_embeddings(
      tower, [p.replace("{}", n) for n in names for p in prompts]), len(names)),
      tower.logit_scale, tower.logit_bias)
  assert got.shape == (len(pool.labels), 3)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
