r"""Training and inference speed of jaxal's ResNet-18 against PyTorch's.

Same architecture (ResNet-18, CIFAR stem, width 64, 100 classes), batch 128,
32 px, SGD with momentum and weight decay, on the same machine in the same run.
PyTorch is only a reference here, never a dependency of jaxal:

    .venv/bin/pip install -r bench/requirements-torch.txt
    python3 run.py bench train            # --quick: tiny sizes, checks the script

On a GPU backend the same is measured at 224 px (ImageNet stem, batch 256) and
32 px, float32 and bfloat16. The last line is `train_speed_ratio_vs_torch: <x>`
(jaxal's CPU training images/s over PyTorch's).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxal import _xla_cpu, models
from jaxal.models import inference, train

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script only.")
flags.DEFINE_integer("batch", 128, "Batch size.")
flags.DEFINE_integer("size", 32, "Image size (px).")
flags.DEFINE_integer("width", 64, "ResNet width.")
flags.DEFINE_integer("steps", 5, "Timed steps per round (after one warm step).")
flags.DEFINE_bool("check_gpu_section", False, "Run the GPU section on the default "
                  "backend even if it is not a GPU (with --quick: checks its code).")
flags.DEFINE_integer("rounds", 5, "Rounds; jaxal and PyTorch alternate within each.")
flags.DEFINE_bool("cpu_section", True, "Run the CPU section (jaxal on the CPU backend "
                  "against PyTorch on the CPU). --nocpu_section on a GPU host spends "
                  "its time on the GPU section alone; the last line then says so.")
flags.DEFINE_bool("compare_polyphase", True, "Also time jaxal's training with XLA's "
                  "own stride-2 input gradients (polyphase_grads=False).")


def _rate(fn, steps, batch, sync):
  """Images/s of `steps` calls of `fn` (one warm call first)."""
  sync(fn())
  t = time.perf_counter()
  out = None
  for _ in range(steps):
    out = fn()
  sync(out)
  return steps * batch / (time.perf_counter() - t)


def jax_runner(size, batch, width, stem, dtype=jnp.float32, platform=None,
               polyphase_grads=True):
  """(train(steps), infer(steps), infer_on_device(steps)) -> images/s of jaxal on
  the first device (of `platform`, default the default backend): the pmapped
  `train.train_step` with donated state; `inference.predict` (the library's
  inference path, host arrays in and out) over `steps` batches; and predict's
  compiled function on one batch already on the device (what PyTorch's number
  measures)."""
  model = models.ResNet18(num_classes=100, width=width, stem=stem,
                          polyphase_grads=polyphase_grads)
  config = train.TrainConfig(batch_size=batch, schedule="constant",
                             learning_rate=0.1, num_epochs=1)
  state0 = train.create_state(model, config, (size, size, 3))
  dev = (jax.local_devices(backend=platform) if platform else jax.local_devices())[:1]
  step = train.pmapped_train_step(model, jnp.dtype(dtype).name, tuple(dev))
  rng = np.random.default_rng(0)
  images = rng.standard_normal((batch, size, size, 3), np.float32)
  batch_ = train.replicate(
      {"image": images, "label": rng.integers(0, 100, batch).astype(np.int32)}, dev)
  holder = {"state": train.replicate(state0, dev)}
  rates = np.full(len(dev), config.learning_rate, np.float32)
  variables = train.variables_of(state0)
  infer_model = model.clone(dtype=dtype)

  def one_step():  # the timer waits for the whole step: state and metrics
    holder["state"], m = step(holder["state"], batch_, rates)
    return holder["state"], m

  def train_rate(steps):
    return _rate(one_step, steps, batch, jax.block_until_ready)

  def infer_rate(steps):
    pool = np.concatenate([images] * steps)
    inference.predict(infer_model, variables, images, batch_size=batch, devices=dev)
    t = time.perf_counter()
    inference.predict(infer_model, variables, pool, batch_size=batch, devices=dev)
    return steps * batch / (time.perf_counter() - t)

  def infer_device_rate(steps):  # the batch already on the device, as PyTorch's
    run, replicated, sharded = inference._jitted_outputs(infer_model, tuple(dev))
    v, xb = jax.device_put(variables, replicated), jax.device_put(images, sharded)
    return _rate(lambda: run(v, xb), steps, batch, jax.block_until_ready)

  return train_rate, infer_rate, infer_device_rate


def torch_runner(size, batch, width, stem, device="cpu", dtype="float32"):
  """(train(steps), infer(steps)) -> images/s of the same ResNet-18 in PyTorch
  (bfloat16: autocast, the counterpart of jaxal's bfloat16 compute)."""
  import torch  # noqa: PLC0415
  from torch import nn  # noqa: PLC0415
  import _torch_resnet  # noqa: PLC0415  (bench/, on the path as the script's folder)

  net = _torch_resnet.resnet18(width, stem, 100).to(device)
  opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
  x = torch.randn(batch, 3, size, size, device=device)
  y = torch.randint(0, 100, (batch,), device=device)

  def sync(_):
    if device == "cuda":
      torch.cuda.synchronize()

  def autocast():
    return torch.autocast(device_type=device, dtype=torch.bfloat16,
                          enabled=dtype == "bfloat16")

  def train_step():
    opt.zero_grad(set_to_none=True)
    with autocast():
      loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    opt.step()

  def train_rate(steps):
    net.train()
    return _rate(train_step, steps, batch, sync)

  def infer_rate(steps):
    net.eval()
    with torch.no_grad(), autocast():
      return _rate(lambda: net(x), steps, batch, sync)

  return train_rate, infer_rate


def interleaved(runners, steps, rounds):
  """Median images/s of each runner's train and infer over `rounds` rounds,
  the runners alternating within each round so that both see the same machine
  (a shared VM's speed drifts by 10-20% over minutes). Returns
  {name: (train median, infer median, train rates, infer rates)}."""
  rates = {name: ([], []) for name in runners}
  for _ in range(rounds):
    for kind in (0, 1):
      for name, fns in runners.items():
        rates[name][kind].append(fns[kind](steps))
  return {name: (float(np.median(t)), float(np.median(i)), t, i)
          for name, (t, i) in rates.items()}


def pipeline_speed(batch, steps):
  """Images/s of the input pipelines alone (they must not bound
  training). numpy: 32 px in-memory arrays, crop+flip+normalise. tf.data: JPEGs
  of 320x256 decoded, resized, cropped to 224, flipped, normalised (skipped
  without TensorFlow)."""
  from jaxal.datasets import pipeline, procedural  # noqa: PLC0415
  cfg = procedural.OfflineConfig(num_source_classes=10, source_train_per_class=
                                 max(batch * (steps + 1) // 10 + 1, 2))
  x, y = procedural.generate(cfg, "source", "train")
  fn, n_steps = pipeline.array_train_batches(x, y, batch_size=batch, seed=0)
  t = time.perf_counter()
  count = sum(b[0].shape[0] for b in fn(0))
  out = {"numpy 32 px": count / (time.perf_counter() - t)}
  try:
    import tensorflow as tf  # noqa: PLC0415
  except ImportError:
    return out
  rng = np.random.default_rng(0)
  base = [tf.io.encode_jpeg(tf.image.resize(x[i], (256, 320)).numpy().astype(np.uint8)
                            ).numpy() for i in range(min(64, len(x)))]
  n = batch * (steps + 1)
  ds = tf.data.Dataset.from_tensor_slices(
      {"image": [base[i % len(base)] for i in range(n)],
       "label": rng.integers(0, 10, n)}).map(
           lambda ex: {"image": tf.io.decode_jpeg(ex["image"], channels=3),
                       "label": ex["label"]})
  fn, _ = pipeline.tf_train_batches(ds, image_size=224, batch_size=batch, seed=0,
                                    num_examples=n, shuffle_buffer=1000)
  it = fn(0)
  next(it)  # start-up (graph building, first prefetch)
  t = time.perf_counter()
  count = sum(b[0].shape[0] for b in it)
  out["tf.data JPEG 224 px"] = count / (time.perf_counter() - t)
  return out


def _torch():
  try:
    import torch  # noqa: PLC0415
  except ImportError:
    return None
  return torch


def main(argv):
  del argv
  if FLAGS.quick:
    FLAGS.batch, FLAGS.width, FLAGS.steps, FLAGS.rounds = 16, 8, 2, 2
  torch = _torch()
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); "
        f"jax {jax.__version__}, " + (
            f"torch {torch.__version__} ({torch.get_num_threads()} threads, "
            f"{torch.backends.cpu.get_cpu_capability()} kernels)" if torch
            else "torch not installed (pip install -r bench/requirements-torch.txt)"))
  print(f"cpu: {_xla_cpu.cpu_description()}")
  print(f"xla:cpu routing: {_xla_cpu.routing()}")
  jt = tt = None
  if FLAGS.cpu_section:
    jt, tt = cpu_section(torch)
  pipe = pipeline_speed(FLAGS.batch, FLAGS.steps)
  print(f"\n[input pipeline] batch {FLAGS.batch}, this host's CPU cores")
  for name, ips in pipe.items():
    rel = (f" ({ips / jt:.1f}x the 32 px CPU training step)"
           if name.startswith("numpy") and jt else
           "" if name.startswith("numpy") else
           " (compare with the 224 px training step of the GPU section)")
    print(f"  {name:22s}: {ips:8.1f} images/s{rel}")
  if "tf.data JPEG 224 px" not in pipe:
    print("  tf.data JPEG 224 px   : skipped (no TensorFlow here)")
  if jax.default_backend() == "gpu" or FLAGS.check_gpu_section:
    gpu_section(torch, pipe)
  else:
    print("[GPU] skipped: backend is not gpu.")
  if not FLAGS.cpu_section:
    print("train_speed_ratio_vs_torch: unavailable (CPU section skipped: "
          "--nocpu_section)")
  elif tt:
    print(f"train_speed_ratio_vs_torch: {jt / tt:.2f}")
  else:
    print("train_speed_ratio_vs_torch: unavailable (PyTorch not installed)")
    raise SystemExit(1)


def cpu_section(torch):
  """jaxal on the CPU backend against PyTorch on the CPU: (jaxal, torch) training
  images/s (torch None without PyTorch)."""
  args = (FLAGS.size, FLAGS.batch, FLAGS.width, "cifar")
  runners = {"jaxal": jax_runner(*args, platform="cpu")}
  if FLAGS.compare_polyphase:
    xla_grads = jax_runner(*args, platform="cpu", polyphase_grads=False)
    runners["jaxal, XLA's stride-2 gradients"] = (xla_grads[0], lambda steps: 0.0)
  if torch:
    runners["torch"] = torch_runner(*args)
  res = interleaved(runners, FLAGS.steps, FLAGS.rounds)
  jt, ji, jts, jis = res["jaxal"]
  fmt = lambda v: " ".join(f"{x:.1f}" for x in v)  # noqa: E731
  print(f"\n[CPU] ResNet-18 width {FLAGS.width}, {FLAGS.size} px, batch {FLAGS.batch}; "
        f"median of {FLAGS.rounds} alternating rounds of {FLAGS.steps} steps")
  if torch:
    tt, ti, tts, tis = res["torch"]
    print(f"  training  : jaxal {jt:8.1f} images/s, torch {tt:8.1f} images/s, "
          f"ratio {jt / tt:.2f}")
    print(f"  inference : jaxal {ji:8.1f} images/s, torch {ti:8.1f} images/s, "
          f"ratio {ji / ti:.2f}")
    print(f"  rounds    : train jaxal [{fmt(jts)}] torch [{fmt(tts)}]; "
          f"inference jaxal [{fmt(jis)}] torch [{fmt(tis)}]")
  else:
    print(f"  training  : jaxal {jt:8.1f} images/s (no torch reference)")
    print(f"  inference : jaxal {ji:8.1f} images/s (no torch reference)")
  if FLAGS.compare_polyphase:
    xt, _, xts, _ = res["jaxal, XLA's stride-2 gradients"]
    print(f"  training with XLA's own stride-2 input gradients: {xt:8.1f} images/s "
          f"[{fmt(xts)}]; polyphase gradients gain {jt / xt:.2f}x")
  return jt, (res["torch"][0] if torch else None)


def gpu_section(torch, pipe):
  """ResNet-18 at 224 px (ImageNet stem) and 32 px, float32 and bfloat16, jaxal
  on the default backend against PyTorch on CUDA."""
  torch_device = "cuda" if jax.default_backend() == "gpu" else "cpu"
  gpu_torch = torch is not None and (torch_device == "cpu" or torch.cuda.is_available())
  big = FLAGS.batch if FLAGS.quick else 256
  print(f"\n[GPU] {jax.devices()[0].device_kind}, ResNet-18 width {FLAGS.width}; "
        f"median of {FLAGS.rounds} rounds of {FLAGS.steps} steps")
  for size, stem, batch in ((224, "imagenet", big), (32, "cifar", FLAGS.batch)):
    for dtype in ("float32", "bfloat16"):
      jr = jax_runner(size, batch, FLAGS.width, stem, getattr(jnp, dtype))
      runners = {"jaxal": jr[:2], "jaxal on device": (lambda steps: 0.0, jr[2])}
      if gpu_torch:
        runners["torch"] = torch_runner(size, batch, FLAGS.width, stem, torch_device,
                                        dtype)
      res = interleaved(runners, FLAGS.steps, FLAGS.rounds)
      line = (f"  {size:3d} px {dtype:8s} batch {batch:3d}: jaxal train "
              f"{res['jaxal'][0]:8.0f}, inference {res['jaxal'][1]:8.0f} images/s "
              f"(host to host; {res['jaxal on device'][1]:8.0f} on a batch on the "
              "device)")
      if gpu_torch:
        line += (f"; torch train {res['torch'][0]:8.0f}, inference "
                 f"{res['torch'][1]:8.0f}; train ratio "
                 f"{res['jaxal'][0] / res['torch'][0]:.2f}")
      print(line)
      if size == 224 and dtype == "float32":
        for name, ips in pipe.items():
          print(f"      {name} pipeline: {ips / res['jaxal'][0]:.2f}x this training step")
  if not gpu_torch:
    print("  torch on this GPU: not installed, no reference")


if __name__ == "__main__":
  app.run(main)
