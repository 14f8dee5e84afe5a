"""`jaxal train` and `jaxal predict`: the target model M_T (method guide §5)
on the labeled images, and its predictions for a folder.

A target model is cached under WORKDIR/target/<digest of the labeled images,
their labels and the settings>: a rerun loads it, a killed fine-tuning resumes.
"""

from __future__ import annotations

import csv
import dataclasses
import io as _io
import os

import numpy as np

from jaxal import io
from jaxal.cli import label_files, pixels, workdir
from jaxal.cli.workdir import Log, Pool, Workdir, WorkdirError, digest
from jaxal.datasets import images
from jaxal.models import inference, source, target, train
from jaxal.models.checkpoint import Snapshots


TARGET_KINDS = ("svm", "finetune")


@dataclasses.dataclass(frozen=True)
class TargetSettings:
  """The target model of `train` and of later selection rounds."""
  kind: str = "svm"  # "svm" or "finetune"
  svm_c: float = 1.0
  epochs: int = 30
  batch_size: int = 64
  learning_rate: float = 0.01
  seed: int = 0

  def validate(self) -> "TargetSettings":
    if self.kind not in TARGET_KINDS:
      raise WorkdirError(f"--target must be one of {', '.join(TARGET_KINDS)}, got "
                         f"{self.kind!r}.")
    if not self.svm_c > 0 or self.epochs < 1 or self.batch_size < 1 or \
        not self.learning_rate > 0:
      raise WorkdirError("--svm_c and --learning_rate must be > 0, --epochs and "
                         f"--batch_size >= 1; got {self}.")
    return self


def load_source(wd: Workdir, why: str = "this step") -> source.Trained:
  setup = wd.recorded("embed")
  if setup.get("source") is None:
    raise WorkdirError(f"{why} needs the model that computed the features, and "
                       f"this work directory's were imported from "
                       f"{setup.get('features')}; no model is known here. "
                       "(train --target=svm, select, balance, label and report "
                       "work on imported features; report scores a test set "
                       "given as --test_features, its embeddings by the same "
                       "model.)")
  trained = source.load_workdir(setup["source"])
  if trained.digest != setup["source_digest"]:
    raise WorkdirError(f"the source model in {setup['source']} changed since embed; "
                       "use a new --workdir.")
  return trained


def _target_folder(wd: Workdir, pool: Pool, classes: list[str],
                   have: dict[int, int], settings: TargetSettings) -> str:
  """WORKDIR/target/<digest of the labeled images, their labels and settings>."""
  idx = sorted(have)
  return wd.file("target", digest(repr((classes, [pool.paths[i] for i in idx],
                                        [have[i] for i in idx],
                                        dataclasses.asdict(settings)))))


def _restore_finetuned(trained: source.Trained, num_classes: int, folder: str):
  """(model, variables) of the fine-tuned target saved under `folder`."""
  tmodel = trained.model.clone(num_classes=num_classes)
  template = train.variables_of(train.create_state(
      tmodel, train.TrainConfig(num_epochs=1, batch_size=1),
      (trained.image_size,) * 2 + (3,)))
  found = Snapshots(os.path.join(folder, "model"), 0).restore_latest(template)
  if found is None:
    raise WorkdirError(f"the fine-tuned model under {folder} is missing or corrupt; "
                       "delete that folder and rerun train.")
  return tmodel, found[1]


def fit_target(wd: Workdir, pool: Pool, classes: list[str], have: dict[int, int],
               settings: TargetSettings, log: Log):
  """The target model on the labeled images; cached in `_target_folder` (a
  rerun loads it, a killed fine-tuning resumes). Returns (folder, model or None
  for the SVM, variables or LinearSVM)."""
  idx = np.asarray(sorted(have), np.int64)
  y = np.asarray([have[i] for i in idx], np.int64)
  folder = _target_folder(wd, pool, classes, have, settings)
  meta = io.read_json(os.path.join(folder, "target.json"))
  if settings.kind == "svm":
    path = os.path.join(folder, "svm.npz")
    if meta is None:
      target.fit_svm(pool.target_features[idx], y, C=settings.svm_c).save(path)
    model, variables = None, target.LinearSVM.load(path)
  else:
    trained = load_source(wd, "--target=finetune")
    if meta is None:
      cfg = train.TrainConfig(num_epochs=settings.epochs,
                              batch_size=settings.batch_size,
                              learning_rate=settings.learning_rate, schedule="cosine",
                              snapshot_every=0, seed=settings.seed)
      log(f"train: fine-tuning M_S on {len(idx)} labeled images, {settings.epochs} "
          "epochs")
      _, variables = target.finetune(
          trained.model, trained.final, len(classes), pixels.load_pixels(
              wd, [pool.paths[i] for i in idx]), y, cfg,
          workdir=os.path.join(folder, "fit"),
          transform=pixels.normalizer(wd.recorded("embed")),
          log=lambda m: log(f"train: epoch {m['epoch']}/{m['epochs']}, loss "
                            f"{m['loss']:.4f}, {m['seconds_left']:.0f} s left"))
      Snapshots(os.path.join(folder, "model"), 0).save(1, variables)
    model, variables = _restore_finetuned(trained, len(classes), folder)
  if meta is None:
    io.write_json(os.path.join(folder, "target.json"),
                  {"classes": classes, "settings": dataclasses.asdict(settings),
                   "labeled": len(idx), "classes_found": int(np.unique(y).size)})
  return folder, model, variables


def finetuned_outputs(wd: Workdir, pool: Pool, model, variables, chunk: int = 512):
  norm = pixels.normalizer(wd.recorded("embed"))
  feats, probs = [], []
  for s in range(0, len(pool.paths), chunk):
    part = pixels.load_pixels(wd, pool.paths[s:s + chunk])
    f, p = inference.predict(model, variables, part,
                             transform=norm, batch_size=128)
    feats.append(f)
    probs.append(p)
  return np.concatenate(feats), np.concatenate(probs)


def train_target(wd: Workdir, *, labels_csv: str, classes_file: str,
                 settings: TargetSettings, log: Log = print) -> str:
  """Trains the target model on every labeled image; records it as the work
  directory's current target (WORKDIR/target/current.json). Returns its folder."""
  settings.validate()
  pool = wd.pool()
  classes, have = workdir.labeled(wd, pool, labels_csv, classes_file, log=log)
  if len(have) < 1:
    raise WorkdirError(f"--labels {labels_csv} holds no label yet.")
  found = len(set(have.values()))
  workdir.remember_classes(wd, classes, classes_file)
  folder, _, _ = fit_target(wd, pool, classes, have, settings, log)
  wd.write(os.path.join("target", "current.json"),
           {"key": os.path.basename(folder), "kind": settings.kind})
  log(f"train: {settings.kind} target model on {len(have)} labeled images of "
      f"{found} of {len(classes)} classes -> {folder}")
  return folder


def current_target(wd: Workdir):
  cur = wd.read(os.path.join("target", "current.json"))
  if cur is None:
    raise WorkdirError(f"{wd.sel_path} has no trained target model; run `jaxal train` "
                       "first.")
  folder = wd.file("target", cur["key"])
  meta = io.read_json(os.path.join(folder, "target.json"))
  if cur["kind"] == "svm":
    return meta, None, target.LinearSVM.load(os.path.join(folder, "svm.npz"))
  return (meta, *_restore_finetuned(load_source(wd), len(meta["classes"]), folder))


def predict_folder(wd: Workdir, images_dir: str, *, chunk: int = 256,
                   log: Log = print):
  """(paths, predicted class names ('' if unreadable), scores, errors) of every
  image under `images_dir` by the current target model."""
  meta, model, target_model = current_target(wd)
  setup = wd.recorded("embed")
  trained = load_source(wd, "predicting new images") if model is None else None
  norm = pixels.normalizer(setup)
  paths = images.scan(images_dir)
  names, scores, errors = [], [], {}
  for s in range(0, len(paths), chunk):
    part = paths[s:s + chunk]
    imgs, ok, errs = pixels.load_folder(setup, images_dir, part)
    errors.update(errs)
    pred = np.full(len(part), -1)
    score = np.full(len(part), np.nan)
    if ok.any():
      if model is None:
        f, _ = inference.predict(trained.model, trained.final, imgs,
                                 transform=norm, batch_size=128)
        d = target_model.decision(f)
        pred[ok] = target_model.classes[np.argmax(d, 1)]
        score[ok] = d.max(1)
      else:
        _, p = inference.predict(model, target_model, imgs,
                                 transform=norm, batch_size=128)
        pred[ok], score[ok] = np.argmax(p, 1), p.max(1)
    names += [meta["classes"][k] if k >= 0 else "" for k in pred]
    scores += score.tolist()
    log(f"predict: {min(s + chunk, len(paths))}/{len(paths)} images")
  return paths, names, scores, errors


def predict(wd: Workdir, *, images_dir: str, out_csv: str, log: Log = print) -> str:
  """Writes `out_csv` (path,label,score,error) for every image under
  `images_dir`; an unreadable image gets an empty label and its error."""
  if not out_csv:
    raise WorkdirError("--out is required: the CSV file to write.")
  paths, names, scores, errors = predict_folder(wd, images_dir, log=log)
  buf = _io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["path", "label", "score", "error"])
  for p, n, s in zip(paths, names, scores):
    w.writerow([label_files.to_cell(p), label_files.to_cell(n),
                "" if not np.isfinite(s) else f"{s:.6g}",
                label_files.to_cell(errors.get(p, ""))])
  io.write_text(out_csv, buf.getvalue())
  log(f"predict: {len(paths) - len(errors)} images predicted, {len(errors)} "
      f"unreadable -> {out_csv}")
  return out_csv
