"""Training under pmap, snapshots, resume, inference, ensembles, target models."""

import dataclasses
import functools
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxal import _xla_cpu, metrics, models
from jaxal.models import checkpoint, inference, target, train
from tests.conftest import ROOT, subprocess_env  # noqa: E402
from tests.models import train_fixture as F


def leaves(tree):
  return [np.asarray(v) for v in jax.tree_util.tree_leaves(tree)]


def assert_trees_close(a, b, **kw):
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_allclose(x, y, **kw)


@functools.lru_cache(maxsize=None)
def pmapped_step(devices):
  return jax.pmap(functools.partial(train.train_step,
                                    model=F.model().clone(bn_axis_name="batch")),
                  axis_name="batch", devices=devices)


def one_step(devices, state, images, labels):
  step = pmapped_step(tuple(devices))
  n = len(devices)
  batch = {"image": images.reshape(n, -1, *images.shape[1:]),
           "label": labels.reshape(n, -1)}
  rate = F.config().learning_rate  # a first step's rate, whatever the schedule
  new, m = step(train.replicate(state, devices), batch, np.full(n, rate, np.float32))
  return train.host_state(new), jax.device_get(m)


def test_train_step_lowers_loss_on_fixed_batch():
  x, y = F.data(16)
  state = train.create_state(F.model(), F.config(schedule="constant"), F.IMAGE)
  dev = jax.local_devices()[:1]
  losses = []
  for _ in range(5):
    state, m = one_step(dev, state, x, y)
    losses.append(float(m["loss"][0]))
  assert losses[-1] < losses[0] * 0.8, losses


@pytest.mark.skipif(_xla_cpu.init_options(jax.default_backend()) is None,
                    reason="XLA's default options: nothing to compare")
def test_initialisation_compiled_with_jaxals_options_equals_xlas_default():
  # create_state compiles model.init with `_xla_cpu.init_options` (a third of
  # the compile time on CPU); the parameters must be those of XLA's defaults.
  model = models.ResNet18(num_classes=20, width=8, stem="cifar")
  config = F.config(seed=3)
  state = train.create_state(model, config, (32, 32, 3))
  assert all(isinstance(run, jax.stages.Compiled)
             for run in train._jitted_init(model)._compiled.values())
  key = jax.random.fold_in(jax.random.PRNGKey(3), 0)
  ref = jax.jit(functools.partial(model.init, train=False))(
      key, jnp.zeros((1, 32, 32, 3), jnp.float32))
  for a, b in zip(leaves({"params": state.params, "batch_stats": state.batch_stats}),
                  leaves(ref), strict=True):
    np.testing.assert_array_equal(a, b)


def test_replicated_state_compiles_the_step_once(caplog):
  # The state's second step must reuse the first step's compilation: pmap's
  # outputs and `train.replicate` carry the same sharding.
  devices = jax.local_devices()[:2]
  step = jax.pmap(functools.partial(train.train_step,
                                    model=F.model().clone(bn_axis_name="batch")),
                  axis_name="batch", devices=devices, donate_argnums=(0,))
  state = train.replicate(train.create_state(F.model(), F.config(), F.IMAGE),
                          devices)
  x, y = F.data(16)
  with jax.log_compiles(True), caplog.at_level(logging.DEBUG):
    for _ in range(3):
      state, _ = step(state, {"image": x.reshape(2, 8, *x.shape[1:]),
                              "label": y.reshape(2, 8)}, np.full(2, 0.1, np.float32))
  # compiled once (JAX logs this line for a persistent-cache hit too)
  compiled = [r.getMessage()[:120] for r in caplog.records
              if "Finished XLA compilation" in r.getMessage()]
  assert len(compiled) == 1, compiled


def test_four_devices_give_the_update_of_one():
  x, y = F.data(16)
  state = train.create_state(F.model(), F.config(), F.IMAGE)
  one, m1 = one_step(jax.local_devices()[:1], state, x, y)
  four, m4 = one_step(jax.local_devices()[:4], state, x, y)
  assert_trees_close(one.params, four.params, rtol=1e-4, atol=1e-6)
  assert_trees_close(one.batch_stats, four.batch_stats, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(m1["loss"][0], m4["loss"][0], rtol=1e-5)


def test_fit_checkpoints_snapshots_and_resumes_after_kill(tmp_path):
  full = F.run(workdir=str(tmp_path / "a"))
  with pytest.raises(KeyboardInterrupt):
    F.run(workdir=str(tmp_path / "b"), stop_after_steps=5)  # dies in epoch 2
  snaps = checkpoint.Snapshots(str(tmp_path / "b"), 1)
  assert snaps.latest.steps() == [1]  # epoch 2 never completed
  resumed = F.run(workdir=str(tmp_path / "b"))
  assert int(resumed.step) == int(full.step) == 9
  assert_trees_close(full.params, resumed.params, rtol=0, atol=1e-6)
  assert_trees_close(full.batch_stats, resumed.batch_stats, rtol=0, atol=1e-6)
  assert checkpoint.Snapshots(str(tmp_path / "a"), 1).snapshot_epochs() == [1, 2, 3]


_TIMED_FIT = textwrap.dedent("""
  import json, time
  import numpy as np
  from jaxal.models import train
  from tests.models import train_fixture as F
  B, S, steps, epochs = 64, 32, 4, 3
  rng = np.random.default_rng(0)
  x = rng.normal(size=(B * steps, S, S, 3)).astype(np.float32)
  y = rng.integers(0, F.CLASSES, B * steps)
  stamps, logged = [], []

  def log(m):
    stamps.append(time.perf_counter())
    logged.append(m)

  train.fit(F.model(width=8), F.config(num_epochs=epochs, batch_size=B),
            lambda e: ((x[i * B:(i + 1) * B], y[i * B:(i + 1) * B])
                       for i in range(steps)),
            steps_per_epoch=steps, image_shape=(S, S, 3), log=log)
  print(json.dumps({"stamps": stamps, "logged": logged, "images": B * steps}))
""")


def test_printed_images_per_second_is_what_the_wall_clock_allows():
  """Each epoch's images/s is timed once its steps have run, not when they were
  dispatched: the seconds it implies fill the wall-clock interval between two
  progress lines (less the little host work between them) and never exceed it.
  On one CPU device JAX runs the steps asynchronously (the suite's 4 devices
  happen to wait), so the run is a process of its own with one device: timed at
  dispatch, the printed rate was 30x the real one there."""
  out = subprocess.run([sys.executable, "-c", _TIMED_FIT], capture_output=True,
                       text=True, timeout=300, cwd=ROOT,
                       env=subprocess_env(XLA_FLAGS="", JAX_PLATFORMS="cpu"))
  assert out.returncode == 0, out.stderr[-3000:]
  res = json.loads(out.stdout.strip().splitlines()[-1])
  stamps, logged = res["stamps"], res["logged"]
  for k in range(1, len(logged)):  # the first epoch's interval has no start
    wall = stamps[k] - stamps[k - 1]
    implied = res["images"] / logged[k]["images_per_second"]
    assert implied <= wall, (k, implied, wall)
    assert implied >= 0.7 * wall, (
        f"epoch {k + 1}: {logged[k]['images_per_second']:.0f} images/s printed, "
        f"but the epoch took {wall:.3f} s of wall clock for {res['images']} images")
    left = logged[k - 1]["seconds_left"]  # its estimate of the epochs still to run
    assert left >= 0.5 * wall * (len(logged) - k), (k, left, wall)


def test_snapshot_round_trip_and_corrupt_checkpoint_is_skipped(tmp_path):
  final = F.run(workdir=str(tmp_path))
  snaps = checkpoint.Snapshots(str(tmp_path), 1)
  epoch, state = snaps.restore_latest(final)
  assert epoch == 3
  assert_trees_close(final, state, rtol=0, atol=0)
  # Corrupt the newest checkpoint: it must be skipped with a warning, never loaded.
  corrupt(tmp_path / "latest" / "3")
  with pytest.warns(UserWarning, match="latest/3 is corrupt"):
    epoch, state = snaps.restore_latest(final)
  assert epoch == 3  # the verified periodic snapshot of the same epoch
  assert_trees_close(final, state, rtol=0, atol=0)
  corrupt(tmp_path / "snapshots" / "3")
  with pytest.warns(UserWarning, match="snapshots/3 is corrupt"):
    epoch, _ = snaps.restore_latest(final)
  assert epoch == 2
  # A finished checkpoint without a manifest (killed while finishing) is skipped.
  os.remove(tmp_path / "latest.manifests" / "2.json")
  with pytest.warns(UserWarning, match="no manifest"):
    epoch, state = snaps.restore_latest(final)
  assert epoch == 2 and int(state.step) == 6  # from snapshots/2
  # A rerun resumes from there, replaces the bad checkpoints, ends where it should.
  with pytest.warns(UserWarning):
    again = F.run(workdir=str(tmp_path))
  assert_trees_close(final.params, again.params, rtol=0, atol=1e-6)
  assert snaps.restore_latest(final)[0] == 3


def corrupt(step_dir):
  victim = max((p for p in step_dir.rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
  data = bytearray(victim.read_bytes())
  data[len(data) // 2] ^= 0xFF
  victim.write_bytes(bytes(data))


def test_two_processes_agree_with_one(tmp_path):
  # Two processes with one CPU device each (see the worker for why one) against
  # one process with 4 devices. One epoch (3 steps): the tiny net's training is
  # chaotic enough that float rounding of differently ordered all-reduces grows
  # from 1e-6 to 1e-2 over 9 steps (measured: 1 vs 2 in-process devices too).
  single = F.run(epochs=1)  # one process, 4 devices, whole global batches
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  here = os.path.dirname(os.path.abspath(__file__))
  out = tmp_path / "params.npz"
  env = {**os.environ, "PYTHONPATH": here}
  # Output to files, not pipes: a worker blocked on a full pipe while the other
  # waits for it in a collective would deadlock.
  logs = [open(tmp_path / f"worker{rank}.log", "wb") for rank in (0, 1)]
  procs = [subprocess.Popen([sys.executable,
                             os.path.join(here, "_two_process_worker.py"),
                             str(port), str(rank), str(out)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
           for rank, log in zip((0, 1), logs)]
  try:
    for p in procs:
      p.wait(timeout=300)
  finally:
    for p in procs:
      p.kill()
    for log in logs:
      log.close()
  text = [(tmp_path / f"worker{r}.log").read_text()[-3000:] for r in (0, 1)]
  assert all(p.returncode == 0 for p in procs), text
  got = np.load(out)
  want = leaves(single.params)
  assert len(got.files) == len(want) + 1
  for i, w in enumerate(want):
    np.testing.assert_allclose(got[f"arr_{i}"], w, rtol=1e-4, atol=1e-5)
  feats, _ = inference.predict(F.model(), train.variables_of(single),
                               F.data(10, seed=1)[0], batch_size=4)
  np.testing.assert_allclose(got["features"], feats, rtol=1e-3, atol=1e-4)


def test_inference_sees_every_example_once():
  model = F.model()
  state = train.create_state(model, F.config(), F.IMAGE)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  x, _ = F.data(37)  # 37 is divisible by neither the batch nor the devices
  feats, probs = inference.predict(model, variables, x, batch_size=16)
  assert feats.shape == (37, 32) and probs.shape == (37, F.CLASSES)
  logits, want = model.apply(variables, x, train=False)
  np.testing.assert_allclose(feats, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(probs, jax.nn.softmax(logits), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_ensemble_of_identical_snapshots_equals_single_model():
  model = F.model()
  state = train.create_state(model, F.config(), F.IMAGE)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  x, _ = F.data(20)
  single = inference.predict(model, variables, x, batch_size=8)
  ens = inference.ensemble_predict(model, [variables] * 3, x, batch_size=8)
  for a, b in zip(single, ens):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_svm_and_finetuning_beat_chance_on_separable_data():
  source = F.run()
  model = F.model()
  variables = {"params": source.params, "batch_stats": source.batch_stats}
  x, y = F.data(96, seed=1)
  xt, yt = F.data(60, seed=2)
  train_f, _ = inference.predict(model, variables, x)
  test_f, _ = inference.predict(model, variables, xt)
  svm_acc = metrics.accuracy_all_classes(yt, target.svm_predict(train_f, y, test_f),
                                         np.unique(y), F.CLASSES)
  new_model, new_vars = target.finetune(
      model, variables, F.CLASSES, x, y,
      F.config(num_epochs=4, schedule="constant", learning_rate=0.02),
      log=lambda m: None)
  ft_acc = metrics.accuracy_all_classes(
      yt, target.finetune_predict(new_model, new_vars, xt), np.unique(y), F.CLASSES)
  chance = 100 / F.CLASSES
  assert svm_acc > chance + 30, svm_acc
  assert ft_acc > chance + 30, ft_acc


def test_inference_transform_per_batch_equals_transformed_pool():
  from jaxal.datasets import pipeline
  model = F.model()
  state = train.create_state(model, F.config(), F.IMAGE)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  x = np.random.default_rng(0).integers(0, 256, (21, *F.IMAGE), dtype=np.uint8)
  got = inference.predict(model, variables, x, batch_size=8,
                          transform=pipeline.normalize)
  want = inference.predict(model, variables, pipeline.normalize(x), batch_size=8)
  for g, w in zip(got, want):
    np.testing.assert_array_equal(g, w)
    assert g.ctypes.data % 64 == 0


def test_predict_batches_of_uneven_sizes_equal_predict():
  model = F.model()
  variables = train.variables_of(train.create_state(model, F.config(), F.IMAGE))
  x, _ = F.data(21)
  sizes = [8, 3, 8, 2]  # a data loader's batches, not all full
  chunks = np.split(x, np.cumsum(sizes)[:-1])
  got = list(inference.predict_batches(model, variables, iter(chunks), batch_size=8))
  assert [len(f) for f, _ in got] == sizes
  want_f, want_p = inference.predict(model, variables, x, batch_size=8)
  np.testing.assert_allclose(np.concatenate([f for f, _ in got]), want_f, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.concatenate([p for _, p in got]), want_p, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="batch_size"):
    list(inference.predict_batches(model, variables, [x], batch_size=8))


def test_finetune_transform_per_batch_equals_converting_up_front():
  source = F.run()
  model = F.model()
  variables = {"params": source.params, "batch_stats": source.batch_stats}
  rng = np.random.default_rng(3)
  x = rng.integers(0, 256, (32, *F.IMAGE), dtype=np.uint8)
  y = np.arange(32) % F.CLASSES
  norm = lambda a: (np.asarray(a, np.float32) - 127.5) / 64.0  # noqa: E731
  cfg = F.config(num_epochs=2, schedule="constant", learning_rate=0.02)
  m1, v1 = target.finetune(model, variables, F.CLASSES, norm(x), y, cfg,
                           log=lambda m: None)
  m2, v2 = target.finetune(model, variables, F.CLASSES, x, y, cfg, log=lambda m: None,
                           transform=norm)
  for a, b in zip(jax.tree.leaves(v1), jax.tree.leaves(v2)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(
      target.finetune_predict(m1, v1, norm(x)),
      target.finetune_predict(m2, v2, x, transform=norm))


def _reference_step(state, batch, *, model):
  """The train step as it was before the rate became an input: optax SGD
  evaluating its schedule inside the compiled step (flax's apply_gradients)."""
  def loss_fn(params):
    (logits, _), updates = model.apply(
        {"params": params, "batch_stats": state.batch_stats}, batch["image"],
        train=True, mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), batch["label"]).mean()
    return loss, updates["batch_stats"]

  (_, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads = jax.lax.pmean(grads, "batch")
  stats = jax.lax.pmean(stats, "batch")
  return state.apply_gradients(grads=grads, batch_stats=stats)


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_rate_as_input_equals_optax_schedule_in_the_step_bit_for_bit(schedule):
  cfg = F.config(num_epochs=3, schedule=schedule, step_epochs=(1, 2),
                 warmup_epochs=1 if schedule == "cosine" else 0)
  steps_per_epoch, n = 2, 2
  devices = jax.local_devices()[:n]
  model = F.model()
  state = train.create_state(model, cfg, F.IMAGE)
  mask = lambda p: jax.tree_util.tree_map(lambda v: v.ndim > 1, p)  # noqa: E731
  ref_tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay, mask=mask),
                       optax.sgd(train.make_schedule(cfg, steps_per_epoch),
                                 momentum=cfg.momentum))
  ref = state.replace(tx=ref_tx, opt_state=ref_tx.init(state.params))
  # Same optimizer state layout: checkpoints written before still restore.
  assert jax.tree.structure(ref.opt_state) == jax.tree.structure(state.opt_state)
  ref_step = jax.pmap(functools.partial(
      _reference_step, model=model.clone(bn_axis_name="batch")), axis_name="batch",
      devices=devices)
  new_step = train.pmapped_train_step(model, "float32", tuple(devices))
  rates = train.learning_rates(cfg, steps_per_epoch)
  assert len(set(rates.tolist())) > 2  # the schedule moves
  ref, new = train.replicate(ref, devices), train.replicate(state, devices)
  for k in range(cfg.num_epochs * steps_per_epoch):
    x, y = F.data(8, seed=10 + k)
    batch = {"image": x.reshape(n, -1, *x.shape[1:]), "label": y.reshape(n, -1)}
    if k == 0:  # the XLA:CPU routing the library step chose for this size
      ref_step = ref_step.lower(ref, batch).compile(compiler_options=_xla_cpu.
                                                    train_options("cpu", 4 * 4))
    ref = ref_step(ref, batch)
    new, _ = new_step(new, batch, np.full(n, rates[k], np.float32))
  ref, new = train.host_state(ref), train.host_state(new)
  for a, b in zip(jax.tree.leaves((ref.params, ref.batch_stats, ref.opt_state)),
                  jax.tree.leaves((new.params, new.batch_stats, new.opt_state))):
    np.testing.assert_array_equal(a, b)


def test_finetuning_cells_trace_the_train_step_once(monkeypatch):
  """Cells of a sweep differ in labeled images, steps per epoch, rates and
  seeds; the train step is traced (and compiled) for the first only: the rate
  is an input, the optimizer one object, and the state's `apply_fn` the same
  for equal models with a new head (`train._apply_fn`)."""
  source = F.run()
  model = F.model()
  variables = {"params": source.params, "batch_stats": source.batch_stats}
  traced = []
  step = train.train_step

  def counting(*args, **kwargs):
    traced.append(1)  # runs when JAX traces the step, not when it runs it
    return step(*args, **kwargs)

  train.pmapped_train_step.cache_clear()
  monkeypatch.setattr(train, "train_step", counting)
  try:
    cfg = F.config(num_epochs=2, batch_size=8, schedule="cosine")
    for n, seed in ((16, 0), (40, 1), (24, 2)):
      x, y = F.data(n, seed=seed)
      target.finetune(model, variables, F.CLASSES, x, y,
                      dataclasses.replace(cfg, seed=seed), log=lambda m: None)
    assert len(traced) == 1, f"traced {len(traced)} times"
  finally:
    train.pmapped_train_step.cache_clear()
