r"""SimCLR pretraining speed: jaxal's step against PyTorch running the same model,
loss and augmentations, on the same machine in the same run.

Both sides: ResNet-18 (CIFAR stem) without a class head, a projection head of
one hidden layer (feature width) to 128, two views per image made on the device
from uint8 images (random resized crop with flip, colour jitter in a random
order per image with probability 0.8, grey-scale with probability 0.2), NT-Xent
at temperature 0.1, SGD with momentum 0.9 and weight decay 1e-4. PyTorch's
augmentations are batched tensor operations (affine_grid / grid_sample for the
crops, per-image factors and orders), the counterpart of jaxal's jitted
per-example ones; both draw their own random numbers. PyTorch is a reference
only, never a dependency:

    .venv/bin/pip install -r bench/requirements-torch.txt
    python3 run.py bench pretrain            # --quick: tiny sizes, checks the script

It also reports where jaxal's step spends its time: the augmentations alone
(jitted, the same batch) against the whole step, which bounds what moving them
to a host input pipeline could save (on CPU the pipeline would run on the same
cores). On a GPU backend the same is measured there. The last line is
`ssl_speed_ratio_vs_torch: <x>` (jaxal's training images/s over PyTorch's).
"""

from __future__ import annotations

import os
import sys
import time

import jax
import numpy as np
from absl import app, flags

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]  # jaxal, and bench's _torch_resnet
from jaxal import _xla_cpu  # noqa: E402
from jaxal.models import augment, simclr, train  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script only.")
flags.DEFINE_integer("batch", 256, "Images per step (2 views each).")
flags.DEFINE_integer("size", 32, "Image size (px).")
flags.DEFINE_integer("width", 16, "ResNet width.")
flags.DEFINE_integer("steps", 3, "Timed steps per round (after one warm step).")
flags.DEFINE_integer("rounds", 5, "Rounds; jaxal and PyTorch alternate within each.")


def _images(n, size):
  return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), np.uint8)


def jax_runner(batch, size, width):
  """(train(steps) -> images/s, augment(steps) -> images/s) of jaxal."""
  net = simclr.SimCLR(width=width, stem="cifar")
  cfg = simclr.SimCLRConfig(batch_size=batch, temperature=0.1)
  dev = tuple(jax.local_devices()[:1])
  holder = {"state": train.replicate(simclr.create_state(net, cfg, (size, size, 3)),
                                    dev)}
  step = simclr.pmapped_train_step(net, cfg, dev)
  x = _images(batch, size)
  batch_ = {"image": x[None]}
  rate = np.full(1, 0.1, np.float32)
  views = jax.jit(lambda k, im: augment.views(k, im))
  key = jax.random.PRNGKey(0)

  def train_rate(steps):
    def one():  # the timer waits for the whole step: state and metrics
      holder["state"], m = step(holder["state"], batch_, rate)
      return holder["state"], m
    return _rate(one, steps, batch)

  def augment_rate(steps):
    return _rate(lambda: views(key, x), steps, batch)

  return train_rate, augment_rate


def torch_runner(batch, size, width, device="cpu"):
  """(train(steps), augment(steps)) -> images/s of the same in PyTorch on
  `device` ("cpu" or "cuda")."""
  import torch  # noqa: PLC0415
  from torch import nn  # noqa: PLC0415
  import _torch_resnet  # noqa: PLC0415
  enc = _torch_resnet.resnet18(width, "cifar", 0)
  feat = 8 * width
  net = nn.Sequential(enc, nn.Linear(feat, feat), nn.ReLU(),
                      nn.Linear(feat, 128)).to(device)
  decay = [p for p in net.parameters() if p.ndim > 1]
  rest = [p for p in net.parameters() if p.ndim <= 1]
  opt = torch.optim.SGD([{"params": decay, "weight_decay": 1e-4},
                         {"params": rest, "weight_decay": 0.0}], lr=0.1, momentum=0.9)
  x = torch.from_numpy(_images(batch, size)).permute(0, 3, 1, 2).contiguous().to(
      device)
  mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
  std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
  luma = torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)
  gen = torch.Generator(device=device).manual_seed(0)

  def u(n, lo=0.0, hi=1.0):
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)

  def grey(im):
    return (im * luma).sum(1, keepdim=True)

  def hue(im, shift):
    r, g, b = im[:, 0], im[:, 1], im[:, 2]
    maxc, top = im.max(1)
    minc = im.min(1).values
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(top == 0, (g - b) / safe,
                    torch.where(top == 1, 2 + (b - r) / safe, 4 + (r - g) / safe))
    h = torch.where(delta > 0, (h / 6) % 1, torch.zeros_like(h))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)),
                    torch.zeros_like(maxc))
    h = (h + shift.view(-1, 1, 1)) % 1
    i = torch.floor(h * 6)
    f = h * 6 - i
    v = maxc
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    sel = lambda *c: sum(torch.where(i == k, c[k], torch.zeros_like(v))  # noqa: E731
                         for k in range(6))
    return torch.stack([sel(v, q, p, p, t, v), sel(t, v, v, q, p, p),
                        sel(p, p, t, v, v, q)], 1).clamp(0, 1)

  def view(images):
    n = images.shape[0]
    im = images.float() / 255
    area = u(n, 0.2, 1.0)
    ratio = torch.exp(u(n, np.log(3 / 4), np.log(4 / 3)))
    cw = torch.sqrt(area * ratio).clamp(max=1.0)
    ch = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (u(n) * (1 - cw)) + cw / 2
    cy = (u(n) * (1 - ch)) + ch / 2
    flip = torch.where(u(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 2] = cw * flip, 2 * cx - 1
    theta[:, 1, 1], theta[:, 1, 2] = ch, 2 * cy - 1
    grid = nn.functional.affine_grid(theta, list(im.shape), align_corners=False)
    im = nn.functional.grid_sample(im, grid, mode="bilinear", padding_mode="border",
                                   align_corners=False)
    fb, fc, fs = (u(n, 0.6, 1.4).view(-1, 1, 1, 1) for _ in range(3))
    fh = u(n, -0.1, 0.1)
    ops = (lambda a: (a * fb).clamp(0, 1),
           lambda a: (fc * a + (1 - fc) * grey(a).mean((1, 2, 3), keepdim=True)
                      ).clamp(0, 1),
           lambda a: (fs * a + (1 - fs) * grey(a)).clamp(0, 1),
           lambda a: hue(a, fh))
    order = torch.argsort(torch.rand(n, 4, generator=gen, device=device), 1)
    jit = im
    for pos in range(4):
      outs = torch.stack([op(jit) for op in ops])  # [4, n, 3, H, W]
      jit = outs[order[:, pos], torch.arange(n, device=device)]
    im = torch.where((u(n) < 0.8).view(-1, 1, 1, 1), jit, im)
    im = torch.where((u(n) < 0.2).view(-1, 1, 1, 1), grey(im).expand_as(im), im)
    return (im - mean) / std

  def nt_xent(z):
    z = nn.functional.normalize(z, dim=1)
    n = z.shape[0] // 2
    logits = z @ z.T / 0.1
    logits.fill_diagonal_(float("-inf"))
    pos = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(device)
    return nn.functional.cross_entropy(logits, pos)

  def step():
    opt.zero_grad(set_to_none=True)
    loss = nt_xent(net(torch.cat([view(x), view(x)])))
    loss.backward()
    opt.step()
    return loss

  def sync(_):
    if device == "cuda":
      torch.cuda.synchronize()

  def train_rate(steps):
    net.train()
    return _rate(step, steps, batch, sync)

  def augment_rate(steps):
    with torch.no_grad():
      return _rate(lambda: (view(x), view(x)), steps, batch, sync)

  return train_rate, augment_rate


def _rate(fn, steps, batch, sync=jax.block_until_ready):
  """Images/s of `steps` calls of `fn` after two warm calls (PyTorch's CPU
  kernels pick their algorithms on the first calls, XLA compiles on the
  first)."""
  for _ in range(2):
    sync(fn())
  t = time.perf_counter()
  out = None
  for _ in range(steps):
    out = fn()
  sync(out)
  return steps * batch / (time.perf_counter() - t)


def main(argv):
  del argv
  if FLAGS.quick:
    FLAGS.batch, FLAGS.width, FLAGS.steps, FLAGS.rounds = 16, 4, 1, 1
  try:
    import torch  # noqa: PLC0415
  except ImportError:
    torch = None
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); "
        f"jax {jax.__version__}, " + (
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch
            else "torch not installed (pip install -r bench/requirements-torch.txt)"))
  print(f"cpu: {_xla_cpu.cpu_description()}")
  args = (FLAGS.batch, FLAGS.size, FLAGS.width)
  runners = {"jaxal": jax_runner(*args)}
  torch_device = "cpu"
  if torch is not None:
    if jax.default_backend() == "gpu" and torch.cuda.is_available():
      torch_device = "cuda"
    runners["torch"] = torch_runner(*args, device=torch_device)
  rates = {name: ([], []) for name in runners}
  for _ in range(FLAGS.rounds):
    for kind in (0, 1):
      for name, fns in runners.items():
        rates[name][kind].append(fns[kind](FLAGS.steps))
  med = {name: (float(np.median(t)), float(np.median(a))) for name, (t, a) in
         rates.items()}
  fmt = lambda v: " ".join(f"{x:.1f}" for x in v)  # noqa: E731
  print(f"\n[{jax.default_backend()}] SimCLR step, ResNet-18 width {FLAGS.width}, "
        f"{FLAGS.size} px, batch {FLAGS.batch} (x2 views); median of {FLAGS.rounds} "
        f"alternating rounds of {FLAGS.steps} steps")
  jt, ja = med["jaxal"]
  print(f"  jaxal : training {jt:8.1f} images/s [{fmt(rates['jaxal'][0])}]; "
        f"augmentations alone {ja:8.1f} images/s, {100 * jt / ja:.0f}% of the step")
  if torch is None:
    print("ssl_speed_ratio_vs_torch: unavailable (PyTorch not installed)")
    raise SystemExit(1)
  tt, ta = med["torch"]
  print(f"  torch ({torch_device}): training {tt:8.1f} images/s [{fmt(rates['torch'][0])}]; "
        f"augmentations alone {ta:8.1f} images/s, {100 * tt / ta:.0f}% of the step")
  print(f"  augmentations: jaxal / torch {ja / ta:.2f}")
  print(f"ssl_speed_ratio_vs_torch: {jt / tt:.2f}")


if __name__ == "__main__":
  app.run(main)
