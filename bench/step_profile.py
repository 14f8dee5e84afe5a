r"""Where a jaxal ResNet-18 train step spends its time: a per-op profile.

    python3 run.py bench step_profile --width=8 --batch=128   # the quickstart's M_S

Runs the library's pmapped train step (`bench/train.py`'s runner) under JAX's
profiler and sums the time of XLA's operations over the step's threads, by kind
(YNNPACK fusions, transposes, Eigen convolutions, XLA's loop fusions...) and for
the costliest operations one by one, each with its output shape and operands
from the compiled HLO (dumped by this script). Times are per step; operations of
the two XLA threads overlap, so their sum can exceed the step's wall time.
The profile reading uses `jax._src.profiler.ProfileData`, a private API: on a JAX
without it the script says so and prints the step time only.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import sys
import tempfile
import time

_DUMP = tempfile.mkdtemp(prefix="jaxal_step_hlo_")
# Before JAX (and jaxal, which adds its routing flag) starts the CPU backend.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_dump_to={_DUMP} "
                           "--xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*_fun.*")

import jax  # noqa: E402  pylint: disable=g-import-not-at-top
from absl import app, flags  # noqa: E402  pylint: disable=g-import-not-at-top

from jaxal import _xla_cpu  # noqa: E402  pylint: disable=g-import-not-at-top

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train as train_bench  # noqa: E402  pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_integer("profile_steps", 10, "Profiled steps (after 3 warm ones).")
flags.DEFINE_integer("top", 15, "Costliest single operations to list.")


def _hlo_lines() -> dict:
  """name -> 'shape op(operands)' of every instruction of the train step's HLO."""
  files = glob.glob(os.path.join(_DUMP, "*_fun*after_optimizations.txt"))
  if not files:
    return {}
  text = open(max(files, key=os.path.getsize)).read()
  out = {}
  for line in text.splitlines():
    m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = (.*)", line)
    if m:
      out[m.group(1)] = re.sub(r", (metadata|backend_config|calls)=.*", "", m.group(2))
  return out


def main(argv):
  del argv
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); "
        f"jax {jax.__version__}")
  print(f"cpu: {_xla_cpu.cpu_description()}")
  print(f"xla:cpu routing: {_xla_cpu.routing()}")
  batch, width, size = FLAGS.batch, FLAGS.width, FLAGS.size
  train_rate = train_bench.jax_runner(size, batch, width, "cifar")[0]
  train_rate(3)
  rates = [train_rate(FLAGS.profile_steps) for _ in range(3)]
  print(f"ResNet-18 width {width}, {size} px, batch {batch}: "
        f"{max(rates):,.0f} images/s, {1000 * batch / max(rates):.1f} ms per step "
        "(best of 3, unprofiled)")
  try:
    from jax._src.profiler import ProfileData  # pylint: disable=g-import-not-at-top
  except ImportError:
    print("this JAX has no jax._src.profiler.ProfileData: no per-op profile")
    return
  trace = tempfile.mkdtemp(prefix="jaxal_step_trace_")
  jax.profiler.start_trace(trace)
  t = time.perf_counter()
  train_rate(FLAGS.profile_steps)
  wall = time.perf_counter() - t
  jax.profiler.stop_trace()
  pb = sorted(glob.glob(os.path.join(trace, "**", "*.xplane.pb"), recursive=True))
  data = ProfileData.from_file(pb[-1])
  per_op, count = collections.Counter(), collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      if "XLAEigen" not in line.name:  # XLA:CPU's worker threads
        continue
      for ev in line.events:
        if ev.name.startswith(("ThunkExecutor", "SlinkyThreadPool", "end:")):
          continue
        per_op[ev.name] += ev.duration_ns
        count[ev.name] += 1
  steps = FLAGS.profile_steps
  kinds, kind_count = collections.Counter(), collections.Counter()
  for name, ns in per_op.items():
    kind = re.sub(r"\.\d+$", "", name)
    kinds[kind] += ns
    kind_count[kind] += count[name]
  total = sum(kinds.values())
  print(f"\nprofiled: {steps} steps in {wall:.2f} s ({1000 * wall / steps:.1f} ms per "
        f"step with the profiler on); operations sum to {total / 1e6 / steps:.1f} ms "
        "per step over XLA's threads")
  print(f"  {'ms/step':>8} {'share':>6} {'ops/step':>8}  kind")
  for kind, ns in kinds.most_common(14):
    print(f"  {ns / 1e6 / steps:8.2f} {100 * ns / total:5.1f}% "
          f"{kind_count[kind] / steps:8.1f}  {kind}")
  hlo = _hlo_lines()
  print(f"\ncostliest single operations (ms per step; output shape and operands):")
  for name, ns in per_op.most_common(FLAGS.top):
    print(f"  {ns / 1e6 / steps:6.2f}  {name:30s} {hlo.get(name, '?')[:150]}")


if __name__ == "__main__":
  app.run(main)
