"""SimCLR: NT-Xent, the augmentations, pretraining, resume, the source it writes."""

import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal.datasets import pipeline, procedural
from jaxal.models import (augment, checkpoint, inference, simclr, source,
                          ssl_source, target, train)
from tests.conftest import ROOT, subprocess_env

leaves = jax.tree_util.tree_leaves
# 5 target classes x 60 images (and 20 test images each) of the offline data.
POOL = procedural.OfflineConfig(num_source_classes=4, num_target_classes=5,
                                source_train_per_class=2, source_test_per_class=1,
                                target_train_per_class=60, target_test_per_class=20)
# 5 epochs: the pretraining test's margins, measured on seeds 0, 1, 2 (8 epochs
# in brackets): the loss falls by 0.22, 0.43, 0.36 (0.38, 0.62, 0.41) against
# the 0.1 asked; SVM accuracy over random features 0.32, 0.14, 0.19 (0.23, 0.13,
# 0.15) against the 0.1 asked.
CONFIG = simclr.SimCLRConfig(epochs=5, batch_size=32, temperature=0.2,
                             learning_rate=0.2)
WIDTH = 4


def nt_xent_reference(z1, z2, t):
  """NT-Xent in float64 NumPy, written from the paper's eq. (1) with loops."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n = len(z1)
  total = 0.0
  for a in range(2 * n):
    p = (a + n) % (2 * n)
    denom = sum(np.exp(z[a] @ z[k] / t) for k in range(2 * n) if k != a)
    total += -np.log(np.exp(z[a] @ z[p] / t) / denom)
  return total / (2 * n)


def test_nt_xent_by_hand_and_against_float64_reference():
  # Two orthogonal unit pairs, t = 1: each anchor's positive has similarity 1,
  # its two negatives 0: loss = log(e + 2) - 1.
  z = np.eye(2, dtype=np.float32)
  assert float(simclr.nt_xent(z, z, 1.0)) == pytest.approx(np.log(np.e + 2) - 1,
                                                           abs=1e-6)
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 6, 5)).astype(np.float32)
  for t in (0.1, 0.5, 2.0):
    assert float(simclr.nt_xent(z1, z2, t)) == pytest.approx(
        nt_xent_reference(z1, z2, t), rel=1e-5)
  # The positive is row i of the other view: shuffling z2 changes the loss,
  # and the reference agrees on the shuffled pairs too.
  z2s = z2[::-1]
  assert float(simclr.nt_xent(z1, z2s, 0.5)) == pytest.approx(
      nt_xent_reference(z1, z2s, 0.5), rel=1e-5)
  assert abs(float(simclr.nt_xent(z1, z2s, 0.5)) -
             float(simclr.nt_xent(z1, z2, 0.5))) > 1e-3


def test_nt_xent_split_over_devices_equals_the_whole_batch():
  # Device d holds [z1_d; z2_d]; with every device's rows as negatives the mean
  # of the devices' losses is the reference on that layout.
  rng = np.random.default_rng(1)
  z1, z2 = rng.normal(size=(2, 8, 4)).astype(np.float32)
  parts = [(z1[:4], z2[:4]), (z1[4:], z2[4:])]
  every = np.concatenate([np.concatenate(p) for p in parts])
  split = np.mean([float(simclr.nt_xent(a, b, 0.3, z_all=every, offset=8 * d))
                   for d, (a, b) in enumerate(parts)])
  z = every.astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  want = []
  for a in range(16):
    p = 8 * (a // 8) + (a % 8 + 4) % 8
    logits = z[a] @ z.T / 0.3
    logits[a] = -np.inf
    want.append(np.log(np.exp(logits).sum()) - logits[p])
  assert split == pytest.approx(np.mean(want), rel=1e-5)


@pytest.mark.parametrize("bad", [dict(temperature=0.0), dict(temperature=-1.0),
                                 dict(batch_size=1), dict(optimizer="adam"),
                                 dict(epochs=0)])
def test_bad_settings_are_refused_naming_the_argument(bad):
  name = next(iter(bad))
  with pytest.raises(ValueError, match=f"^{name}"):
    simclr.SimCLRConfig(**bad).validate()
  with pytest.raises(ValueError, match="temperature must be > 0"):
    simclr.nt_xent(np.ones((2, 2)), np.ones((2, 2)), 0.0)
  with pytest.raises(ValueError, match="at least 2"):
    simclr.check_images(np.zeros((1, 8, 8, 3), np.uint8))
  with pytest.raises(ValueError, match="uint8"):
    simclr.check_images(np.zeros((4, 8, 8, 3), np.float32))


def _images(n=6, size=16, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), np.uint8)


def test_views_are_deterministic_per_key_and_example_and_in_range():
  x = _images()
  key = jax.random.PRNGKey(3)
  a1, a2 = augment.views(key, x)
  b1, b2 = augment.views(key, x)
  np.testing.assert_array_equal(a1, b1)
  np.testing.assert_array_equal(a2, b2)
  assert not np.allclose(a1, a2)  # the two views differ
  c1, _ = augment.views(jax.random.PRNGKey(4), x)
  assert not np.allclose(a1, c1)
  # Example i's views depend on its global position only: the second half of
  # the batch, given its offset, gets the same views (any device count). Put
  # first in a batch of the same shape, so that op by op reuses the kernels
  # compiled above (a new shape compiled each of them again: ~5 s); a device's
  # smaller share of the batch is `test_four_devices_give_the_step_of_one`'s.
  shifted = np.concatenate([x[3:], x[:3]])
  h1, _ = augment.views(key, shifted, first=3)
  np.testing.assert_allclose(h1[:3], a1[3:], rtol=0, atol=1e-6)
  # Jitted (as in the train step) and op by op they agree: a hue sector chosen
  # by `max == r` once differed by up to 0.75 between the two.
  j1, _ = jax.jit(lambda k, im: augment.views(k, im))(key, x)
  np.testing.assert_allclose(j1, a1, rtol=0, atol=1e-4)
  # Un-normalised, every pixel lies in [0, 1].
  mean, std = pipeline.MEAN / 255, pipeline.STD / 255
  for v in (a1, a2):
    raw = np.asarray(v) * std + mean
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5


def test_crop_boxes_lie_inside_the_image_within_the_stated_ranges():
  cfg = augment.AugmentConfig()
  keys = jax.random.split(jax.random.PRNGKey(0), 2000)
  top, left, ch, cw = jax.vmap(lambda k: augment.crop_box(k, 32, 32, cfg.scale,
                                                          cfg.ratio))(keys)
  top, left, ch, cw = map(np.asarray, (top, left, ch, cw))
  assert (top >= 0).all() and (left >= 0).all()
  assert (top + ch <= 32 + 1e-4).all() and (left + cw <= 32 + 1e-4).all()
  area = ch * cw / 32 ** 2
  assert area.max() <= 1 + 1e-5 and area.min() >= cfg.scale[0] * 0.999 * (3 / 4)
  unclipped = (ch < 32 - 1e-3) & (cw < 32 - 1e-3)
  ratio = cw[unclipped] / ch[unclipped]
  assert ratio.min() >= 3 / 4 - 1e-4 and ratio.max() <= 4 / 3 + 1e-4
  assert area[unclipped].min() >= cfg.scale[0] - 1e-5


def test_identity_crop_flip_and_greyscale_do_exactly_that():
  x = _images(2, 8).astype(np.float32) / 255
  key = jax.random.PRNGKey(0)
  plain = augment.AugmentConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0,
                                jitter=0.0, grayscale=0.0)
  out = augment.augment(key, jnp.asarray(x[0]), plain)
  np.testing.assert_allclose(out, x[0], atol=1e-6)
  flipped = augment.augment(key, jnp.asarray(x[0]), augment.AugmentConfig(
      scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1.0, jitter=0.0, grayscale=0.0))
  np.testing.assert_allclose(flipped, x[0][:, ::-1], atol=1e-6)
  grey = augment.augment(key, jnp.asarray(x[0]), augment.AugmentConfig(
      scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0, jitter=0.0, grayscale=1.0))
  np.testing.assert_allclose(grey[..., 0], grey[..., 2], atol=1e-6)
  np.testing.assert_allclose(grey[..., 0], x[0] @ np.array([0.299, 0.587, 0.114]),
                             atol=1e-5)
  # HSV round trip, and a zero hue shift or unit factors change nothing.
  np.testing.assert_allclose(augment.hsv_to_rgb(augment.rgb_to_hsv(x)), x, atol=1e-5)
  np.testing.assert_allclose(augment.adjust_hue(x, 0.0), x, atol=1e-5)
  for op in (augment.adjust_brightness, augment.adjust_contrast,
             augment.adjust_saturation):
    np.testing.assert_allclose(op(x, 1.0), x, atol=1e-6)
  # A third of a turn maps pure red to pure green.
  red = np.array([[[1.0, 0.0, 0.0]]], np.float32)
  np.testing.assert_allclose(augment.adjust_hue(red, 1 / 3), [[[0, 1, 0]]], atol=1e-5)
  with pytest.raises(ValueError, match="^scale"):
    augment.AugmentConfig(scale=(0.0, 1.0)).validate()


def test_four_devices_give_the_step_of_one():
  net = simclr.SimCLR(width=WIDTH, stem="cifar")
  cfg = simclr.SimCLRConfig(batch_size=16, temperature=0.5, learning_rate=0.1)
  x = _images(16, 16)
  state = train.create_state(net, cfg.train_config(), x.shape[1:])
  out = []
  for n in (1, 4):
    devices = tuple(jax.local_devices()[:n])
    step = simclr.pmapped_train_step(net, cfg, devices)
    new, m = step(train.replicate(state, devices),
                  {"image": x.reshape(n, -1, *x.shape[1:])}, np.full(n, 0.1, np.float32))
    out.append((train.host_state(new), float(m["loss"][0])))
  (one, l1), (four, l4) = out
  assert l1 == pytest.approx(l4, rel=1e-5)
  for a, b in zip(leaves((one.params, one.batch_stats)),
                  leaves((four.params, four.batch_stats)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _pool():
  x, y = procedural.generate(POOL, "target", "train")
  xt, yt = procedural.generate(POOL, "target", "test")
  return x, y, xt, yt


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """One uninterrupted pretraining on the tiny offline pool (labels unused)."""
  workdir = str(tmp_path_factory.mktemp("ssl") / "a")
  losses = []
  x = _pool()[0]
  ssl_source.pretrain_workdir(x, workdir, width=WIDTH, config=CONFIG,
                              log=lambda m: losses.append(m["loss"]))
  return workdir, losses


def test_pretraining_lowers_the_loss_and_beats_random_features(pretrained):
  workdir, losses = pretrained
  assert len(losses) == CONFIG.epochs
  assert losses[-1] < losses[0] - 0.1, losses
  x, y, xt, yt = _pool()
  trained = source.load_workdir(workdir)
  assert trained.self_supervised and not trained.imported
  net = simclr.SimCLR(width=WIDTH, stem="cifar")
  random_init = simclr.backbone(net, train.create_state(net, CONFIG.train_config(),
                                                        x.shape[1:]))

  def svm_accuracy(model, variables):
    f, p = inference.predict(model, variables, x, transform=pipeline.normalize)
    g, _ = inference.predict(model, variables, xt, transform=pipeline.normalize)
    assert p.shape == (len(x), 0)  # an encoder: no class probabilities
    return np.mean(target.svm_predict(f, y, g) == yt)

  ssl, rand = svm_accuracy(trained.model, trained.final), svm_accuracy(*random_init)
  # A property, not a tuned number: SimCLR's features separate held-out images
  # of classes it never saw labels of better than the same network untrained.
  assert ssl > rand + 0.1, (ssl, rand)


_KILLED_RUN = """
import os, signal, sys
from tests.models import test_simclr as T
from jaxal.models import ssl_source


def log(m):
  # `train.fit` logs an epoch once its checkpoint is saved: dying here kills
  # the run between epochs 2 and 3 on any machine, however fast.
  print("logged epoch", m["epoch"], flush=True)
  if m["epoch"] == 2:
    os.kill(os.getpid(), signal.SIGKILL)


ssl_source.pretrain_workdir(T._pool()[0], sys.argv[1], width=T.WIDTH, config=T.CONFIG,
                            log=log)
"""


def test_sigkill_then_resume_gives_the_uninterrupted_parameters(pretrained, tmp_path):
  workdir = str(tmp_path / "b")
  proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, workdir], cwd=ROOT,
                        env=subprocess_env(), capture_output=True, text=True,
                        timeout=600)
  # Really killed mid-run: by SIGKILL, after the epoch-2 checkpoint, before the
  # last epoch's and before result.json.
  assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
  logged = [l for l in proc.stdout.splitlines() if l.startswith("logged epoch")]
  assert logged == ["logged epoch 1", "logged epoch 2"], proc.stdout
  snaps = checkpoint.Snapshots(os.path.join(workdir, "checkpoints"),
                               CONFIG.snapshot_every)
  assert 2 in snaps.latest.steps() and max(snaps.latest.steps()) == 2, \
      snaps.latest.steps()
  assert CONFIG.epochs not in snaps.latest.steps() + snaps.snapshot_epochs()
  assert not os.path.exists(os.path.join(workdir, "result.json"))
  with pytest.raises(ValueError, match="has not finished pretraining"):
    source.load_workdir(workdir)
  resumed = []
  ssl_source.pretrain_workdir(_pool()[0], workdir, width=WIDTH, config=CONFIG,
                              log=lambda m: resumed.append(m["epoch"]))
  assert resumed == list(range(3, CONFIG.epochs + 1))  # from epoch 2's checkpoint
  a = source.load_workdir(pretrained[0]).final
  b = source.load_workdir(workdir).final
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)


def test_a_workdir_of_another_setting_is_refused(pretrained):
  import dataclasses  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="another setting.*simclr"):
    ssl_source.pretrain_workdir(_pool()[0], pretrained[0], width=WIDTH,
                                config=dataclasses.replace(CONFIG, temperature=0.3))


def test_train_ssl_script_pretrains_a_pool_and_refuses_bad_flags(tmp_path):
  script = os.path.join(ROOT, "experiments", "train_ssl.py")
  bad = subprocess.run([sys.executable, script, f"--workdir={tmp_path / 'x'}",
                        "--temperature=0"], env=subprocess_env(), cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2 and "--temperature must be > 0" in bad.stderr, bad.stderr
  # The network and settings of `pretrained` (on 32 px images like these): the
  # script's step and initialisation are the ones that run compiled, read back
  # from the persistent compilation cache instead of compiled again.
  out = subprocess.run([sys.executable, script, f"--workdir={tmp_path / 'w'}",
                        f"--width={WIDTH}", "--epochs=1",
                        f"--batch_size={CONFIG.batch_size}",
                        f"--temperature={CONFIG.temperature}",
                        f"--learning_rate={CONFIG.learning_rate}"],
                       env=subprocess_env(), cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  assert "imbalanced pool of offline_target" in out.stdout
  trained = source.load_workdir(str(tmp_path / "w"))
  assert trained.self_supervised and trained.config["num_images"] < 4000


def test_lars_scales_each_layer_by_its_trust_ratio():
  # One step without momentum history: the update of a kernel is
  # -(trust ratio) x (gradient + decay x weights), trust ratio 1e-3 x |w| / |u|;
  # biases (ndim 1) get neither the decay nor the ratio.
  opt = simclr.make_optimizer("lars", 0.9, 1e-2)
  params = {"k": jnp.full((2, 2), 2.0), "b": jnp.ones(2)}
  grads = {"k": jnp.ones((2, 2)), "b": jnp.full(2, 0.5)}
  updates, _ = opt.update(grads, opt.init(params), params)
  u = np.ones((2, 2)) + 1e-2 * 2.0
  ratio = 1e-3 * np.linalg.norm(np.full((2, 2), 2.0)) / np.linalg.norm(u)
  np.testing.assert_allclose(updates["k"], -ratio * u, rtol=1e-5)
  np.testing.assert_allclose(updates["b"], -np.full(2, 0.5), rtol=1e-6)


def test_resnet50_encoder_gives_its_feature_width():
  net = simclr.SimCLR(width=2, arch="resnet50")
  state = train.create_state(net, CONFIG.train_config(), (16, 16, 3))
  # The shapes the forward passes return, traced without running them: run op
  # by op, ResNet-50's hundreds of operations took seconds for these shapes.
  x = jax.ShapeDtypeStruct((3, 16, 16, 3), jnp.float32)
  z, h = jax.eval_shape(net.apply, train.variables_of(state), x)
  assert z.shape == (3, 128) and h.shape == (3, 64)  # 32 x width
  enc, variables = simclr.backbone(net, state)
  logits, feats = jax.eval_shape(enc.apply, variables, x)
  assert logits.shape == (3, 0) and feats.shape == (3, 64)
