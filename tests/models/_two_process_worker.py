"""One process of the two-process training test (run by tests/models/test_train.py)."""

import os
import sys

# One CPU device per process: with several, a device whose computation waits in a
# gloo all-reduce can occupy the threads the other local device needs to reach it.
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

from jaxal.models import distributed  # noqa: E402

port, rank, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
distributed.initialize(f"127.0.0.1:{port}", 2, rank, initialization_timeout=120)

import jax  # noqa: E402
import numpy as np  # noqa: E402

import train_fixture  # noqa: E402  (the script's folder is on sys.path)

from jaxal.models import inference, train  # noqa: E402

state = train_fixture.run(lambda b: distributed.process_share(b), epochs=1)
# Pool inference under jax.distributed: each process runs its local devices.
feats, _ = inference.predict(train_fixture.model(),
                             train.variables_of(state),
                             train_fixture.data(10, seed=1)[0], batch_size=4)
if jax.process_index() == 0:
  np.savez(out, *jax.tree_util.tree_leaves(state.params), features=feats)
