"""`jaxal label`: the labeling page in the browser, with the balancing step
choosing the next images as answers arrive (`jaxal.cli.label_page`).

On a work directory that `embed` has filled: makes the selection first when
there is none (`--method`, `--budget`, as `jaxal select`), then serves the page
until interrupted. Answers go to the selection's answer database
(labels.sqlite, one durable transaction per answer) and from it to labels.csv at
every batch end, before the page says the budget is spent, and when the server
stops; `train`, `report` and `balance` read labels.csv as they read any labels
file, after bringing it up to date from the database (a server killed before
its next export, or still serving). `--export` writes it now. One server per
selection: a second is refused.
"""

from __future__ import annotations

import os
import secrets
import signal
import shlex
from typing import Optional

from jaxal.cli import select_balance, train_predict
from jaxal.cli.workdir import Log, Workdir, WorkdirError

DEFAULT_BATCH = 10


def commands(wd: Workdir, classes_file: Optional[str]) -> dict:
  """The train and report commands to run once the budget is spent."""
  base = [f"--workdir={wd.path}"]
  if wd.selection is not None:
    base.append(f"--selection={wd.selection}")
  base.append(f"--labels={wd.file('labels.csv')}")
  if classes_file:
    base.append(f"--classes={os.path.abspath(classes_file)}")
  q = " ".join(shlex.quote(a) for a in base)
  return {"train": f"jaxal train {q}", "report": f"jaxal report {q}"}


def prepare(wd: Workdir, *, classes_file: Optional[str], method: Optional[str],
            budget: Optional[int], batch: Optional[int], seed: int = 0,
            num_classes: Optional[int] = None, log: Log = print) -> int:
  """Makes the selection when there is none (or checks the flags against it);
  returns the batch size to use."""
  if wd.recorded("select") is None:
    if method is None or budget is None:
      raise WorkdirError("--method and --budget are required: this selection has "
                         "no images chosen yet.")
  if method is not None or budget is not None:
    sel = wd.recorded("select") or {}
    select_balance.select(
        wd, method=method or sel.get("method"), budget=budget or sel.get("budget"),
        seed=seed,
        classes_file=classes_file, num_classes=num_classes,
        settings=train_predict.TargetSettings(), log=log)
  if batch is None:
    batch = (wd.recorded("balance") or {}).get("batch", DEFAULT_BATCH)
  return int(batch)


def label(wd: Workdir, *, classes_file: Optional[str], method: Optional[str] = None,
          budget: Optional[int] = None, batch: Optional[int] = None,
          host: str = "127.0.0.1", port: int = 8000, token: Optional[str] = None,
          lease_s: float = 120.0, rule: str = "ratio",
          majority_distance: str = "nearest", seed: int = 0,
          num_classes: Optional[int] = None, export_only: bool = False,
          guess_weight: Optional[float] = None, projection: str = "pca",
          log: Log = print) -> None:
  """Serves the labeling page until interrupted (then writes labels.csv a last
  time); with `export_only`, writes labels.csv from the answers and returns."""
  from jaxal.cli.label_page import server, session  # pylint: disable=g-import-not-at-top
  loopback = server.is_loopback(host)
  if not loopback and not token:
    raise WorkdirError(f"--host {host} is not a loopback address: anyone who can "
                       "reach it could label. Pass --token=SECRET (e.g. "
                       f"--token={secrets.token_urlsafe(16)}) and give annotators "
                       "the URL with ?token=SECRET.")
  if token is not None and len(token) < 8:
    raise WorkdirError("--token: use at least 8 characters.")
  if not 0 < port < 65536:
    raise WorkdirError(f"--port must be in 1..65535, got {port}.")
  if projection != "pca":  # refused now, not when the map is first opened
    from jaxal.curation import projection as projections  # pylint: disable=g-import-not-at-top
    projections.require(projection)
  batch = prepare(wd, classes_file=classes_file, method=method, budget=budget,
                  batch=batch, seed=seed, num_classes=num_classes, log=log)
  sess = session.Session(wd, classes_file=classes_file, batch=batch, rule=rule,
                         majority_distance=majority_distance, lease_s=lease_s,
                         guess_weight=guess_weight, log=log)
  if export_only:
    sess.close()
    log(f"label: {len(sess.store)} answers -> {wd.file('labels.csv')}")
    return
  try:  # before uvicorn configures logging: a refusal leaves the process as it was
    sess.start()
  except WorkdirError:
    sess.close()
    raise
  app = server.create_app(sess, token=token, loopback=loopback,
                          commands=commands(wd, classes_file), projection=projection)
  import uvicorn  # pylint: disable=g-import-not-at-top
  config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                          access_log=False, timeout_graceful_shutdown=2)
  srv = uvicorn.Server(config)
  shown = "localhost" if loopback else host
  url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
  p = sess.progress()
  log(f"label: {p['labeled']} of {p['budget']} labeled; answers -> "
      f"{wd.file('labels.csv')}")
  log(f"label: serving {url}  (Ctrl-C to stop; answers are saved as they come)")
  # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with
  # the handler it found: make that handler an exception, so that the answers'
  # last export below runs before the process ends.
  previous = signal.signal(signal.SIGTERM, _terminated)
  try:
    srv.run()
  finally:
    sess.close()
    signal.signal(signal.SIGTERM, previous)


def _terminated(signum, frame):
  del frame
  raise SystemExit(128 + signum)
