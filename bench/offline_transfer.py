r"""Linear-probe accuracy of M_S's features on the two offline targets.

The offline data has a near target (the source's primitives) and a far one
(primitives the source never saw), standing in for the paper's strongly and
weakly transferring targets. This measures the gap: a linear SVM on M_S's
features and on raw pixels, trained on each balanced pool (200 images per class)
and tested on its test split. M_S is the quickstart's (same settings, same
digest): trained here if that workdir has none.

    python3 run.py bench offline_transfer       # after or without the quickstart

Last line: `linear_probe_gap_near_minus_far: <points>`.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from jaxal import _xla_cpu
from jaxal.datasets import procedural
from jaxal.experiments import protocol
from jaxal.models import target

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "workdir/quickstart", "Where M_S is (or is trained).")


def main(argv):
  del argv
  print(f"cpu: {_xla_cpu.cpu_description()}")
  settings = protocol.Settings(offline=procedural.OfflineConfig(
      source_test_per_class=1))
  proto = protocol.Protocol(settings, FLAGS.workdir)
  acc = {}
  for d in ("offline_target", "offline_far"):
    pool = proto.pool(d, "balanced")
    f_train, _ = proto.outputs(d, "balanced", "train", False)
    f_test, _ = proto.outputs(d, "balanced", "test", False)
    acc[d] = 100 * np.mean(target.svm_predict(f_train, pool.labels, f_test)
                           == pool.test_labels)
    px = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255  # noqa: E731
    raw = 100 * np.mean(target.svm_predict(
        px(pool.images.array), pool.labels, px(pool.test_images.array))
                        == pool.test_labels)  # offline pools are held in memory
    print(f"{d:15s}: linear probe on M_S features {acc[d]:5.1f}%, on raw pixels "
          f"{raw:5.1f}% ({len(pool.labels)} train, {len(pool.test_labels)} test "
          f"images, {pool.num_classes} classes)")
  print(f"linear_probe_gap_near_minus_far: "
        f"{acc['offline_target'] - acc['offline_far']:.1f}")


if __name__ == "__main__":
  app.run(main)
