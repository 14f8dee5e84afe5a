r"""Where a fine-tuning cell's time goes: compilation, train steps, evaluation,
data preparation and selection, on the quickstart's cells.

    python3 run.py bench finetune_cells                 # the quickstart's far target
    python3 run.py bench finetune_cells --cells=12      # the first 12 of its cells

Builds the quickstart's run (Tables 2-5 on the offline data, every flag of
`experiments/tables.py` applies) and computes its fine-tuning cells through
`Protocol.compute`, the runner's own path, in a fresh work directory whose M_S
is trained first (or reused from an earlier run of this benchmark). Phases are
timed by wrapping the functions the protocol calls; compilation is what JAX
reports through `jax.monitoring` (tracing, lowering, XLA compilation) while each
phase runs, so "train" and "evaluation" exclude their compilation. "train"
includes its data preparation (gathering the labeled images, normalising them
batch by batch), "evaluation" the test split's.

Prints one row per cell and the totals; the last line is
`finetune_seconds_per_cell: <median>`.
"""

from __future__ import annotations

import collections
import contextlib
import os
import statistics
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments import quickstart, tables  # noqa: E402  (the tables' flags)
from jaxal import _xla_cpu  # noqa: E402
from jaxal.experiments import protocol, runner  # noqa: E402
from jaxal.models import target  # noqa: E402

flags.DEFINE_integer("cells", 0, "Fine-tuning cells to run (0: all of the run's).")
flags.FLAGS.set_default("workdir", "workdir/bench_finetune")
FLAGS = flags.FLAGS

COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                  "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")


class Phases:
  """Seconds per phase; compilation separated from the phase it happens in."""

  def __init__(self):
    self.now = "other"
    self.seconds = collections.Counter()
    self.compile = collections.Counter()
    self.compiles = collections.Counter()

  def on_event(self, event, duration, **_):
    if event in COMPILE_EVENTS:
      self.compile[self.now] += duration
      if event == COMPILE_EVENTS[-1]:
        self.compiles[self.now] += 1

  @contextlib.contextmanager
  def phase(self, name):
    outer, self.now = self.now, name
    t0 = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[name] += time.perf_counter() - t0
      self.now = outer

  def wrap(self, name, fn):
    def wrapped(*args, **kwargs):
      with self.phase(name):
        return fn(*args, **kwargs)
    return wrapped


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax's per-restore lines
  run = tables.table_run(2, quickstart.QUICKSTART_TABLES)
  cells = [c for c in runner.cells(run) if c.target == "finetune"]
  if FLAGS.cells:
    cells = cells[:FLAGS.cells]
  print(f"cpu: {_xla_cpu.cpu_description()}")
  print(f"jax {jax.__version__}, devices: {jax.local_device_count()} "
        f"{jax.default_backend()}")
  print(f"xla:cpu routing: {_xla_cpu.routing()}")
  t = run.settings.targets
  print(f"fine-tuning: {t.finetune_epochs} epochs, batch {t.finetune_batch_size}, "
        f"lr {t.finetune_learning_rate}; {len(cells)} cells")
  p = Phases()
  jax.monitoring.register_event_duration_secs_listener(p.on_event)
  proto = protocol.Protocol(run.settings, run.workdir, log=lambda _: None)
  with p.phase("setup (M_S, pools, outputs)"):
    for c in {(c.dataset, c.pool) for c in cells}:
      proto.pool(*c)
      proto.outputs(*c, "train", False)
      proto.outputs(*c, "test", False)
  proto.select = p.wrap("selection", proto.select)
  fit, evaluate = target.finetune, target.finetune_predict
  target.finetune = p.wrap("train", fit)
  target.finetune_predict = p.wrap("evaluation", evaluate)
  per_cell = []
  print(f"{'cell':44s} {'s':>6s} {'compile':>8s} {'train':>6s} {'eval':>6s}")
  try:
    for c in cells:
      before = (sum(p.compile.values()), p.seconds["train"], p.seconds["evaluation"])
      with p.phase("cell"):
        proto.compute(c)
      s = p.seconds["cell"] - sum(per_cell)
      per_cell.append(s)
      print(f"{c.key:44s} {s:6.2f} {sum(p.compile.values()) - before[0]:8.2f} "
            f"{p.seconds['train'] - before[1]:6.2f} "
            f"{p.seconds['evaluation'] - before[2]:6.2f}", flush=True)
  finally:
    target.finetune, target.finetune_predict = fit, evaluate
  print("\nphase totals over the cells (compilation listed apart):")
  for name in ("selection", "train", "evaluation"):
    own = p.seconds[name] - p.compile[name]
    print(f"  {name:12s} {own:8.2f} s  + compile {p.compile[name]:7.2f} s in "
          f"{p.compiles[name]} XLA compilation(s)")
  rest = p.seconds["cell"] - p.seconds["selection"] - p.seconds["train"] \
      - p.seconds["evaluation"]
  print(f"  {'other':12s} {rest:8.2f} s  (oracle labels, metrics)")
  print(f"  {'all cells':12s} {p.seconds['cell']:8.2f} s over {len(cells)} cells")
  print(f"  setup (M_S, pools, outputs; not a cell's): "
        f"{p.seconds['setup (M_S, pools, outputs)']:.1f} s")
  print(f"finetune_seconds_per_cell: {statistics.median(per_cell):.3f}")


if __name__ == "__main__":
  app.run(main)
