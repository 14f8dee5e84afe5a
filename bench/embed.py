r"""`jaxal embed` with an imported ResNet-50 against PyTorch on the same weights.

A folder of JPEGs of odd sizes (photograph-like: 333-500 px, as a camera or a
web crawl gives them) is embedded at 224 px three ways, in the same run, the
contenders alternating within each round:

- `jaxal embed`, the command's whole path (Pillow decode and torchvision's
  resize/crop in a thread pool, the next chunk decoding during this one's model,
  XLA inference), from a source written by `jaxal import-source`;
- PyTorch: torchvision's `resnet50` with the same weights, `Resize(232)`,
  `CenterCrop(224)`, `ToTensor`, `Normalize` on PIL images decoded in a thread
  pool of the same size, batches of the same size, `torch.no_grad`, eval mode;
- the decode/resize pipeline alone (`images.load_batch`), the floor of both.

The model alone (a preprocessed batch in memory) is also timed on both sides.
PyTorch is a reference only: `pip install torch==2.14.1 torchvision==0.29.1`
into .venv (or `python3 run.py test --torch`, which does). On a GPU backend
PyTorch runs on CUDA with the batch moved there, as jaxal's embed does.

    python3 run.py bench embed [--images=N --rounds=R --batch=B] [--quick]

The last line is `embed_speed_ratio_vs_torch: <x>` (jaxal embed's images/s over
PyTorch's end to end).
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import tempfile
import time

import jax
import numpy as np
from absl import app, flags
from PIL import Image

from _images import make_folder  # bench/, the script's folder

from jaxal import _xla_cpu
from jaxal.cli import embed as embed_lib
from jaxal.cli.workdir import Workdir
from jaxal.datasets import images as images_lib
from jaxal.models import inference, pretrained, resnet

FLAGS = flags.FLAGS
flags.DEFINE_integer("images", 96, "JPEGs in the folder.")
flags.DEFINE_integer("batch", 32, "Images per model call (both sides).")
flags.DEFINE_integer("rounds", 3, "Rounds; the contenders alternate within each.")
flags.DEFINE_string("arch", "resnet50", "resnet50 or resnet18.")
flags.DEFINE_bool("quick", False, "Tiny sizes: checks the script only.")


def weights_file(arch: str, path: str) -> str:
  """Seeded weights of `arch` in torchvision's layout, as .safetensors."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  model = resnet.ARCHS[arch](num_classes=1000)
  variables = jax.jit(lambda k: model.init(k, np.zeros((1, 224, 224, 3), np.float32),
                                           train=False))(jax.random.PRNGKey(0))
  save_file(pretrained.to_state_dict(model, jax.device_get(variables)), path)
  return path


def jaxal_embed(folder: str, src: str, work: str, batch: int) -> float:
  """Images/s of a fresh `jaxal embed` of the folder (compiled beforehand)."""
  wd = os.path.join(work, "wd")
  shutil.rmtree(wd, ignore_errors=True)
  t = time.perf_counter()
  pool = embed_lib.embed(Workdir(wd), images_dir=folder, source_dir=src,
                         chunk=max(batch, 64), batch_size=batch, log=lambda m: None)
  return len(pool.paths) / (time.perf_counter() - t)


def pipeline_only(folder: str, paths, prep, batch: int) -> float:
  t = time.perf_counter()
  for s in range(0, len(paths), batch):
    images_lib.load_batch(folder, paths[s:s + batch], prep.crop, preprocess=prep)
  return len(paths) / (time.perf_counter() - t)


def torch_side(torch, tv, arch, weights, folder, paths, prep, batch):
  """(end-to-end images/s, model-only images/s on one batch) of torchvision."""
  from safetensors.torch import load_file  # pylint: disable=g-import-not-at-top
  dev = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() \
      else "cpu"
  net = getattr(tv.models, arch)(weights=None)
  net.load_state_dict(load_file(weights))
  net = net.eval().to(dev)
  tf = tv.transforms.Compose([
      tv.transforms.Resize(prep.resize, interpolation=getattr(
          tv.transforms.InterpolationMode, prep.interpolation.upper())),
      tv.transforms.CenterCrop(prep.crop), tv.transforms.ToTensor(),
      tv.transforms.Normalize(list(prep.mean), list(prep.std))])

  def load(p):
    with Image.open(os.path.join(folder, p)) as img:
      return tf(img.convert("RGB"))
  threads = min(8, os.cpu_count() or 1)

  def sync():
    if dev == "cuda":
      torch.cuda.synchronize()

  def end_to_end():
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as ex, torch.no_grad():
      for s in range(0, len(paths), batch):
        x = torch.stack(list(ex.map(load, paths[s:s + batch]))).to(dev)
        torch.flatten(net.avgpool(net.layer4(net.layer3(net.layer2(net.layer1(
            net.maxpool(net.relu(net.bn1(net.conv1(x))))))))), 1).cpu()
    sync()
    return len(paths) / (time.perf_counter() - t)

  x = torch.stack([load(p) for p in paths[:batch]]).to(dev)

  def model_only(reps=3):
    with torch.no_grad():
      net(x)
      sync()
      t = time.perf_counter()
      for _ in range(reps):
        net(x)
      sync()
    return reps * batch / (time.perf_counter() - t)
  return end_to_end, model_only


def main(argv):
  del argv
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax's per-save INFO lines
  if FLAGS.quick:
    FLAGS.images, FLAGS.batch, FLAGS.rounds, FLAGS.arch = 8, 4, 1, "resnet18"
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import torchvision as tv  # pylint: disable=g-import-not-at-top
  except ImportError:
    torch = tv = None
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); jax "
        f"{jax.__version__}; " + (
            f"torch {torch.__version__}, torchvision {tv.__version__} "
            f"({torch.get_num_threads()} threads, "
            f"{torch.backends.cpu.get_cpu_capability()} kernels)" if torch else
            "torch/torchvision not installed (pip install torch==2.14.1 "
            "torchvision==0.29.1)"))
  print(f"cpu: {_xla_cpu.cpu_description()}")
  print(f"xla:cpu routing: {_xla_cpu.routing()}")
  work = tempfile.mkdtemp(prefix="jaxal-bench-embed-")
  try:
    folder = os.path.join(work, "images")
    make_folder(folder, FLAGS.images)
    weights = weights_file(FLAGS.arch, os.path.join(work, "w.safetensors"))
    src = os.path.join(work, "src")
    pretrained.import_source(FLAGS.arch, weights, src)
    paths = images_lib.scan(folder)
    prep = pretrained.DEFAULT_PREPROCESS[FLAGS.arch]
    print(f"\n{FLAGS.images} JPEGs of 333-500 px, {FLAGS.arch} at {prep.crop} px "
          f"(resize {prep.resize}), batch {FLAGS.batch}, {FLAGS.rounds} rounds")
    jaxal_embed(folder, src, work, FLAGS.batch)  # compiles
    from jaxal.models import source  # pylint: disable=g-import-not-at-top
    trained = source.load_workdir(src)
    x = trained.preprocess.normalize(images_lib.load_batch(
        folder, paths[:FLAGS.batch], prep.crop, preprocess=prep)[0])

    def jaxal_model(reps=3):
      inference.predict(trained.model, trained.final, x, batch_size=FLAGS.batch)
      t = time.perf_counter()
      for _ in range(reps):
        inference.predict(trained.model, trained.final, x, batch_size=FLAGS.batch)
      return reps * FLAGS.batch / (time.perf_counter() - t)
    runs = {"jaxal embed": lambda: jaxal_embed(folder, src, work, FLAGS.batch),
            "pipeline alone": lambda: pipeline_only(folder, paths, prep, FLAGS.batch),
            "jaxal model only": jaxal_model}
    if torch:
      e2e, model_only = torch_side(torch, tv, FLAGS.arch, weights, folder, paths,
                                   prep, FLAGS.batch)
      runs.update({"torchvision end to end": e2e, "torch model only": model_only})
    got = {k: [] for k in runs}
    for _ in range(FLAGS.rounds):
      for k, fn in runs.items():
        got[k].append(fn())
    med = {k: float(np.median(v)) for k, v in got.items()}
    for k, v in got.items():
      print(f"  {k:24s}: {med[k]:8.1f} images/s (rounds: "
            f"{', '.join(f'{r:.1f}' for r in v)})")
    if torch:
      print(f"  model only: jaxal / torch = "
            f"{med['jaxal model only'] / med['torch model only']:.2f}")
      print(f"embed_speed_ratio_vs_torch: "
            f"{med['jaxal embed'] / med['torchvision end to end']:.2f}")
    else:
      print("embed_speed_ratio_vs_torch: unavailable (PyTorch not installed)")
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
