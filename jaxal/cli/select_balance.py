"""`jaxal select` and `jaxal balance`: which images to label, and in what order.

    select   single-shot acquisition (main paper section 3.2) of `budget`
             images -> to_label.csv; with `rounds` > 1, later rounds re-select
             from the target model trained on the labels so far (`jaxal.rounds`);
             DIRECT, which labels as it selects, writes each batch it asks
             about and replays the round from the answers on the next call
    balance  the balancing step (section 3.3, method guide §4) with the
             annotators in the loop: from the labels returned so far, the next
             batch to label, until the budget is spent
"""

from __future__ import annotations

import csv
import dataclasses
import io as _io
from typing import Optional, Sequence

import numpy as np

from jaxal import _validation as V
from jaxal import acquisition, balancing, io, rounds, uncertainty
from jaxal.curation import duplicates
from jaxal.cli import dedupe as dedupe_files
from jaxal.cli import label_files, label_studio, train_predict, workdir, zero_shot
from jaxal.cli.workdir import Log, Pool, Workdir, WorkdirError
from jaxal.models import target


def _scores(method: str, probs: np.ndarray, features: np.ndarray, picks: np.ndarray,
            labeled: Sequence[int]) -> list[str]:
  """What each pick scored: the uncertainty value, core-set's distance to the
  nearest center when it was picked, nothing for random."""
  base = method.replace("_inv", "").replace("_div", "")
  if base in ("entropy", "least_confidence", "margin"):
    fn = getattr(uncertainty, base)  # margin: the margin itself, small = uncertain
    s = np.asarray(fn(probs[picks]), np.float64)
  elif base == "coreset":
    s = _pick_distances(features.astype(np.float64), np.asarray(picks, np.int64),
                        np.asarray(list(labeled), np.int64))
  else:
    return [""] * len(picks)
  return ["" if not np.isfinite(v) else f"{v:.6g}" for v in s]


def _pick_distances(f: np.ndarray, picks: np.ndarray, labeled: np.ndarray,
                    block: int = 1024) -> np.ndarray:
  """Distance of each pick to its nearest center when it was picked: the
  labeled images and the earlier picks (inf for a first pick with none)."""
  def sq(a, b):
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :]
                      - 2 * a @ b.T, 0)
  p = f[picks]
  out = np.full(len(picks), np.inf)
  for s in range(0, len(picks), block):
    rows = p[s:s + block]
    if labeled.size:
      out[s:s + block] = sq(rows, f[labeled]).min(1)
    if s + len(rows) > 1:  # earlier picks: columns before each row's own index
      d = sq(rows, p[:s + len(rows)])
      d[np.arange(len(rows))[:, None] + s <= np.arange(d.shape[1])[None, :]] = np.inf
      out[s:s + block] = np.minimum(out[s:s + block], d.min(1))
  return np.sqrt(out)


HEADER = ["path", "rank", "score", "predicted_class", "predicted_name",
          *dedupe_files.SCORES]


def no_probs(method: str) -> str:
  """Why `method` cannot run on imported features without probabilities."""
  return (f"--method {method} ranks by the source model's probabilities, and this "
          "work directory's features were imported without --probs; methods on "
          f"features alone: {', '.join(acquisition.FEATURES_ONLY)}.")


def source_namer(wd: Workdir):
  """Source-class index (as text) -> M_S's class name, or the index itself."""
  names = wd.source_names()
  def name(pred: str) -> str:
    if names is not None and pred.isdigit() and int(pred) < len(names):
      return names[int(pred)]
    return pred
  return name


def write_to_label(wd: Workdir, pool: Pool, rows: list[tuple]) -> None:
  """to_label.csv (path, rank, score, the guess's class index or target name,
  its name, and `jaxal dedupe`'s scores where it ran: nearest-neighbour
  distance, uniqueness, representativeness) and, for an image folder, the same
  as Label Studio tasks."""
  found = dedupe_files.load(wd)
  buf = _io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(HEADER)
  dicts = []
  for idx, rank, score, pred, name in rows:
    extra = found.score_text(idx) if found else [""] * len(dedupe_files.SCORES)
    w.writerow([label_files.to_cell(pool.paths[idx]), rank, score,
                label_files.to_cell(pred), label_files.to_cell(name), *extra])
    dicts.append(dict(zip(HEADER, (pool.paths[idx], rank, score, pred, name,
                                   *extra))))
  io.write_text(wd.file("to_label.csv"), buf.getvalue())
  if not wd.recorded("embed")["tfds"]:
    classes = (wd.recorded("classes") or {}).get("classes")
    io.write_json(wd.file("to_label.label_studio.json"),
                  label_studio.tasks(dicts, classes=classes,
                                     model_version=_model_version(wd)))


def _model_version(wd: Workdir) -> str:
  sel = wd.recorded("select") or {}
  return f"jaxal-{sel.get('method', 'selection')}"


def select(wd: Workdir, *, method: str, budget: int, seed: int = 0,
           num_rounds: int = 1, labels_csv: Optional[str] = None,
           classes_file: Optional[str] = None,
           settings: train_predict.TargetSettings = train_predict.TargetSettings(),
           num_classes: Optional[int] = None, log: Log = print) -> list[int]:
  """Selects the next round's images (all `budget` when `num_rounds` is 1) and
  writes them to WORKDIR/to_label.csv in selection order; returns their pool
  indices. Later rounds need `labels_csv` covering every earlier pick."""
  pool = wd.pool()
  _check_method(pool, method, num_rounds, settings)
  found = dedupe_files.load(wd)
  setup, sizes = _setup(pool, found, method=method, budget=budget, seed=seed,
                        num_rounds=num_rounds, classes_file=classes_file,
                        settings=settings, num_classes=num_classes)
  known = wd.check("select", setup, hint="For another method or budget on the same "
                   "embedding, name a new selection: --selection=NAME.")
  state = wd.read("selection.json", {"picks": []})
  picks = state["picks"]
  done = [i for r in picks for i in r]
  shown = _shown_again(wd, pool, state, done, num_rounds, labels_csv, classes_file, log)
  if shown is not None:
    return shown

  classes, have, tmodel = None, {}, None
  feats, probs, pred_names = pool.features, pool.probs, pool.guess_text()
  if picks:
    classes, have = workdir.labeled(wd, pool, labels_csv, classes_file, log=log)
    missing = [i for i in done if i not in have]
    if missing:
      log(f"select: {len(missing)} image(s) of earlier rounds have no label yet "
          f"(e.g. {pool.paths[missing[0]]}); label them, then rerun")
      _write_rows(wd, pool, picks[-1], done, missing, state)
      return picks[-1]
    # DIRECT's answers within this round must not retrain the round's target.
    earlier = {i: have[i] for i in done} if method == "direct" else have
    feats, probs, pred_names, tmodel = _round_signals(wd, pool, classes, earlier,
                                                      settings, log)
  r = len(picks)
  direct_later = method == "direct" and bool(picks)
  # DIRECT's questions within this round are replayed, so only `done` is taken
  among = None if found is None else duplicates.candidates(found.duplicates, done)
  try:
    new = rounds.select_round(
        method, sizes[r], features=feats, probs=probs, labeled=done, seed=seed,
        num_classes=len(classes) if direct_later else setup.get("num_classes"),
        target=tmodel, oracle=_annotator(have) if direct_later else None,
        among=among).tolist()
  except _NeedLabels as need:  # DIRECT labels as it selects: ask, then replay
    log(f"select: round {r + 1} of {num_rounds} by direct asks for "
        f"{len(need.batch)} label(s) before it can go on -> "
        f"{wd.file('to_label.csv')}; add them to the labels file and rerun select "
        "(it replays the round from the answers so far)")
    if need.batch not in state.get("asked", []):
      wd.write("selection.json", {**state, "asked": state.get("asked", []) + [need.batch]})
    _write_question(wd, pool, need.batch)
    return list(need.batch)
  state = {"picks": picks + [new], **({"asked": state["asked"]} if "asked" in state
                                        else {}),
           "scores": state.get("scores", []) + [_scores(method, probs, feats,
                                                         np.asarray(new), done)],
           "predicted": state.get("predicted", []) + [[pred_names[i] for i in new]]}
  wd.write("selection.json", state)
  if picks:
    workdir.remember_classes(wd, classes, classes_file)
  if not known:
    wd.record("select", setup)
  log(f"select: round {r + 1} of {num_rounds}: {len(new)} images by {method} "
      f"({'source model' if r == 0 else settings.kind + ' target model'}) -> "
      f"{wd.file('to_label.csv')}")
  _write_rows(wd, pool, new, done + new, new, state)
  return new


def _check_method(pool: Pool, method: str, num_rounds: int,
                  settings: train_predict.TargetSettings) -> None:
  """Refuses, by flag, a method this work directory or these rounds cannot run."""
  if method not in acquisition.METHODS:
    raise WorkdirError(f"--method: unknown method {method!r}; valid methods: "
                       f"{', '.join(acquisition.METHODS)}.")
  if pool.probs is None and acquisition.ranks_whole_pool(method):
    raise WorkdirError(no_probs(method))
  if method == "dropquery" and num_rounds > 1 and settings.kind != "svm":
    raise WorkdirError("--target: --method=dropquery reads the target model's "
                       "linear head in later rounds, which the SVM has and a "
                       "fine-tuned network read from its outputs does not; use "
                       "--target=svm.")
  if method == "direct" and num_rounds < 2:
    raise WorkdirError("--rounds: --method=direct labels around the thresholds of a "
                       "target model trained on earlier rounds' labels, so it needs "
                       "--rounds >= 2 (its first round is random, as in its authors' "
                       "benchmark).")


def _setup(pool: Pool, found, *, method: str, budget: int, seed: int,
           num_rounds: int, classes_file: Optional[str],
           settings: train_predict.TargetSettings,
           num_classes: Optional[int]) -> tuple[dict, list[int]]:
  """The selection's checked setup, as `select` records it, and each round's
  size."""
  try:
    V.check_seed(seed)
    V.check_budget(budget, len(pool.paths), what="embedded images")
    if found is not None:
      V.check_budget(budget, int(found.duplicates.kept.sum()),
                     what="images dedupe kept (one per group)")
    sizes = rounds.round_sizes(int(budget), int(num_rounds))
  except ValueError as e:
    raise WorkdirError(f"--budget/--rounds/--seed: {e}") from None
  setup = {"method": method, "budget": int(budget), "seed": int(seed),
           "rounds": int(num_rounds)}
  if found is not None:  # one image per group of near-duplicates
    setup["dedupe"] = found.setting()
  if method == "probcover":  # its radius needs the number of target classes
    if num_classes is None and classes_file is not None:
      num_classes = len(label_files.read_classes(classes_file))
    if num_classes is None or num_classes < 2:
      raise WorkdirError("--num_classes: --method=probcover needs the number of "
                         "target classes (>= 2), or --classes=FILE to count them.")
    setup["num_classes"] = int(num_classes)
  if num_rounds > 1:  # later rounds re-select with this target model
    t = dataclasses.asdict(settings.validate())
    setup.update({"target": t.pop("kind"), **{k: v for k, v in t.items()
                                               if k != "seed"}})
  return setup, sizes


def _shown_again(wd: Workdir, pool: Pool, state: dict, done: list[int],
                 num_rounds: int, labels_csv: Optional[str],
                 classes_file: Optional[str], log: Log) -> Optional[list[int]]:
  """What to label when no new round can be selected yet, written to
  to_label.csv again: DIRECT's last question while its answers are missing,
  or the last round's images still to label once it is selected (all rounds,
  or no labels given). None when the next round can be selected."""
  picks = state["picks"]
  pending = [i for i in (state.get("asked") or [[]])[-1] if i not in set(done)]
  if pending and labels_csv is None and len(picks) < num_rounds:
    log(f"select: round {len(picks) + 1} of {num_rounds} by direct is under way; "
        f"its last question, {len(pending)} image(s) -> {wd.file('to_label.csv')}; "
        "pass --labels and --classes with their answers to go on")
    _write_question(wd, pool, pending)
    return pending
  if not picks or (len(picks) < num_rounds and labels_csv is not None):
    return None
  have = {}
  if labels_csv:
    _, have = workdir.labeled(wd, pool, labels_csv, classes_file, log=log)
  r = len(picks)
  last = [i for i in picks[-1] if i not in have]
  log(f"select: round {r} of {num_rounds} already selected; "
      f"{len(last)} of its {len(picks[-1])} images still to label"
      + ("" if r == num_rounds else "; pass --labels and --classes for the next "
         "round"))
  _write_rows(wd, pool, picks[-1], done, last, state)
  return picks[-1]


def _write_question(wd: Workdir, pool: Pool, batch: list[int]) -> None:
  """DIRECT's question (the images it asks about) as to_label.csv, in order,
  without scores or guesses."""
  write_to_label(wd, pool, [(i, k + 1, "", "", "") for k, i in enumerate(batch)])


def _write_rows(wd, pool, current, order, keep, state):
  rank = {i: k + 1 for k, i in enumerate(order)}
  scores = dict(zip(current, state["scores"][-1]))
  preds = dict(zip(current, state["predicted"][-1]))
  # The first round's guesses are M_S's (source classes); later ones are target
  # class names already.
  name = source_namer(wd) if len(state["picks"]) == 1 else (lambda p: p)
  keep = set(keep)
  write_to_label(wd, pool, [(i, rank[i], scores[i], preds[i], name(preds[i]))
                             for i in current if i in keep])


def _round_signals(wd: Workdir, pool: Pool, classes: list[str], have: dict[int, int],
                   settings: train_predict.TargetSettings, log: Log):
  """(features, probs, predicted class names) of the pool by the target model
  trained on the labels so far; the source's while < 2 classes are labeled
  (`target.round_signals` decides)."""
  idx = np.asarray(sorted(have), np.int64)
  y = np.asarray([have[i] for i in idx], np.int64)

  def finetuned(_idx, _y):  # fit_target caches the model by the labels `have`
    _, model, variables = train_predict.fit_target(wd, pool, classes, have,
                                                   settings, log)
    return train_predict.finetuned_outputs(wd, pool, model, variables)

  got = target.round_signals(
      idx, y, source=(pool.features, pool.probs),
      svm_features=lambda: pool.target_features, svm_c=settings.svm_c,
      finetune=None if settings.kind == "svm" else finetuned)
  if got.model == "source":
    log("select: fewer than 2 classes labeled so far; this round uses M_S's signals")
    return pool.features, pool.probs, pool.guess_text(), None
  # The SVM scores the classes found so far; the fine-tuned model all of them.
  columns = np.unique(y) if got.model == "svm" else np.arange(len(classes))
  return (got.features, got.probs,
          [classes[columns[k]] for k in np.argmax(got.probs, 1)], got.target)


def _annotator(have: dict[int, int]):
  """DIRECT's oracle from the labels returned so far: raises `_NeedLabels` with
  the batch it asks about when one of them has no label yet."""
  def ask(idx: np.ndarray) -> np.ndarray:
    idx = [int(i) for i in idx]
    if any(i not in have for i in idx):
      raise _NeedLabels([i for i in idx if i not in have])
    return np.asarray([have[i] for i in idx], np.int64)
  return ask


class _NeedLabels(Exception):
  def __init__(self, batch):
    super().__init__()
    self.batch = batch


def balance(wd: Workdir, *, labels_csv: str, classes_file: str, batch: int,
            rule: str = "ratio", majority_distance: str = "nearest",
            guess_weight: Optional[float] = None,
            log: Log = print) -> Optional[list[int]]:
  """The next batch of the balancing step, or None when the budget is spent.

  Replays `balancing.balanced_select` over the selection's ranking with the
  labels returned so far as the oracle (batches of `batch`): the first batch
  holding an unlabeled image is the next to send, so the sequence of batches is
  exactly what `balanced_select` chooses with the same answers. With
  `guess_weight`, the embedding's zero-shot guesses lead until every class has
  an answer (`jaxal.guesses`).
  """
  pool = wd.pool()
  sel = wd.recorded("select")
  if sel is None:
    raise WorkdirError(f"{wd.sel_path} has no selection; run `jaxal select` first.")
  if sel["rounds"] != 1:
    raise WorkdirError("balance follows a single-shot selection; this work "
                       f"directory selects in {sel['rounds']} rounds.")
  if batch < 1:
    raise WorkdirError(f"--batch must be >= 1, got {batch}.")
  if rule not in balancing.RULES or majority_distance not in balancing.MAJORITY_DISTANCES:
    raise WorkdirError(f"--rule must be one of {balancing.RULES} and "
                       f"--majority_distance one of {balancing.MAJORITY_DISTANCES}.")
  classes, have = workdir.labeled(wd, pool, labels_csv, classes_file, log=log)
  setup = {"batch": int(batch), "rule": rule, "majority_distance": majority_distance,
           **zero_shot.guidance_flags(guess_weight)}
  guesses = zero_shot.guidance(wd, pool, classes, guess_weight)
  known = wd.check("balance", setup, hint="Rerun with the recorded flags.")
  method, budget = sel["method"], sel["budget"]
  picks = wd.read("selection.json")["picks"][0]
  ranking = acquisition.ranking_to_balance(method, budget=budget, probs=pool.probs,
                                           selected=picks)
  among = dedupe_files.kept(dedupe_files.for_selection(wd, sel))

  def oracle(idx):
    if any(int(i) not in have for i in idx):
      raise _NeedLabels([int(i) for i in idx])
    return np.asarray([have[int(i)] for i in idx], np.int64)

  try:
    chosen = balancing.balanced_select(
        ranking, pool.features, oracle, budget, len(classes), rule=rule,
        majority_distance=majority_distance, batch_size=batch, among=among,
        guesses=guesses, **({} if guesses is None else {"guess_weight": guess_weight}))
  except _NeedLabels as need:
    nxt = need.batch
  else:
    nxt = None
  state = wd.read("balance.json", {"batches": []})
  if not known:
    wd.record("balance", setup)
  workdir.remember_classes(wd, classes, classes_file)
  if nxt is None:
    log(f"balance: budget spent: {len(chosen)} images selected and labeled; run "
        "`jaxal train`")
    write_to_label(wd, pool, [])
    if state.get("done") != [int(i) for i in chosen]:
      wd.write("balance.json", {**state, "done": [int(i) for i in chosen]})
    return None
  if nxt not in state["batches"]:
    state["batches"].append(nxt)
    wd.write("balance.json", state)
  k = state["batches"].index(nxt)
  before = sum(len(b) for b in state["batches"][:k])
  preds = pool.guess_text()
  name = source_namer(wd)
  rows = [(i, before + j + 1, "", preds[i], name(preds[i]))
          for j, i in enumerate(nxt) if i not in have]
  write_to_label(wd, pool, rows)
  log(f"balance: batch {k + 1} ({before + len(nxt)} of {budget} images): "
      f"{len(rows)} to label -> {wd.file('to_label.csv')}")
  return nxt
