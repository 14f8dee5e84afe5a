"""torchvision and timm ResNet weights as the source model M_S, loaded exactly.

The paper's M_S is an ImageNet-pretrained ResNet-18 (main paper section 4;
supplement section 1). Most users already have one on disk, or a ResNet-50:
`import_source` turns such a weights file into a source work directory that
`jaxal embed`, the experiments' `--source_workdir` and `source.load_workdir` read
like one written by `train_source`.

    pretrained.import_source("resnet18", "resnet18-f37072fd.pth", "work/ms_tv18")
    trained = source.load_workdir("work/ms_tv18")   # model, final variables, ...

What is read. A torchvision `state_dict` (`.pth`/`.pt`, through
`torch.load(weights_only=True)`, so PyTorch is needed for these) or a
`.safetensors` file (read with the `safetensors` package, no PyTorch), in the key
layout torchvision's and timm's `resnet18`/`resnet50` share: `conv1`, `bn1`,
`layer{1-4}.{b}.conv{k}`/`bn{k}`, `layer{s}.{b}.downsample.0/1`, `fc`. A
uniform `module.` prefix (DataParallel) and a top-level `state_dict`/`model`
entry are unwrapped. Every key is used (`num_batches_tracked` is read and
dropped: it only counts training steps), every array is checked against the
Flax model's shape, and anything else is refused naming the key, before
anything is written.

How it maps. jaxal's `ResNet` follows torchvision's layout (symmetric explicit
padding, no convolution biases, BatchNorm epsilon 1e-5, ResNet-50's stride on
the 3x3 convolution), so the conversion is a renaming plus transposes:
convolution weights [out, in, kh, kw] -> [kh, kw, in, out], `fc.weight` [C, D] ->
[D, C], BatchNorm weight/bias -> scale/bias and running mean/var -> the batch
statistics. The outputs equal torchvision's within float32 rounding (the
tests compare logits, features and each stage's output against outputs that
torchvision computed, `tests/data/pretrained/`).

The evaluation transform is recorded with the source (`images.Preprocess`),
torchvision's for the weights named in `DEFAULT_PREPROCESS` (ResNet-18
IMAGENET1K_V1: resize 256, crop 224, bilinear; ResNet-50 IMAGENET1K_V2: resize
232, crop 224, bilinear), and `embed` applies it. Class names: ImageNet's 1,000
(torchvision's list) for a 1,000-class head, else a names file.

An imported source is one model: there are no training snapshots, so the
paper's "+ens" (supplement section 1) cannot be formed from it.
"""

from __future__ import annotations

import os
import re
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import io
from jaxal.datasets.images import Preprocess
from jaxal.models import resnet
from jaxal.models.checkpoint import Snapshots
from jaxal.errors import InputError

KIND = "pretrained"
DEFAULT_PREPROCESS = {
    "resnet18": Preprocess(resize=256, crop=224, interpolation="bilinear"),
    "resnet50": Preprocess(resize=232, crop=224, interpolation="bilinear"),
}
_CLASSES_FILE = os.path.join(os.path.dirname(__file__), "imagenet_classes.txt")
_WRAPPERS = ("state_dict", "model")
_UNUSED = "num_batches_tracked"


class WeightsError(InputError):
  """A weights file that does not hold the architecture's weights."""


def imagenet_classes() -> list[str]:
  """ImageNet-1k's class names in torchvision's order (index = logit)."""
  with open(_CLASSES_FILE, encoding="utf-8") as f:
    return f.read().splitlines()


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """{key: array} of a `.safetensors` or PyTorch (`.pth`/`.pt`/`.bin`) file."""
  if not os.path.isfile(path):
    raise WeightsError(f"--weights {path!r} is not a file.")
  if path.endswith(".safetensors"):
    try:
      from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise WeightsError("reading .safetensors needs the `safetensors` package: "
                         "pip install safetensors") from None
    try:
      out = load_file(path)
    except Exception as e:  # noqa: BLE001 (SafetensorError, TypeError for bf16...)
      raise WeightsError(f"--weights {path}: not a readable safetensors file "
                         f"(truncated or not float16/32/64?): {type(e).__name__}: "
                         f"{e}") from None
  else:
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise WeightsError(f"--weights {path}: reading a PyTorch file needs torch "
                         "(pip install torch), or convert it once to .safetensors "
                         "(safetensors.torch.save_file(torch.load(path), out)).") \
          from None
    try:
      obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (pickle, zip and torch errors alike)
      raise WeightsError(f"--weights {path}: not a readable PyTorch state_dict "
                         f"(truncated?): {type(e).__name__}: {e}") from None
    if isinstance(obj, dict) and len(obj) == 1 and next(iter(obj)) in _WRAPPERS:
      obj = next(iter(obj.values()))
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
      raise WeightsError(f"--weights {path}: expected a state_dict (a dict of "
                         f"tensors), found {type(obj).__name__}.")
    out = {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
           for k, v in obj.items()}
  if out and all(k.startswith("module.") for k in out):
    out = {k[len("module."):]: v for k, v in out.items()}
  return out


def _torch_key(path: tuple[str, ...], blocks_per_stage: Sequence[int],
               convs_per_block: int) -> str:
  """torchvision's key of the Flax variable at `path` (collection dropped)."""
  leaf = {"kernel": "weight", "scale": "weight", "bias": "bias",
          "mean": "running_mean", "var": "running_var"}[path[-1]]
  if path[0] == "head":
    return f"fc.{leaf}"
  if path[0] in ("stem_conv", "stem_bn"):
    return f"{'conv1' if path[0] == 'stem_conv' else 'bn1'}.{leaf}"
  k = int(path[0].rsplit("_", 1)[1])  # the block's index over the whole network
  stage = int(np.searchsorted(np.cumsum(blocks_per_stage), k, side="right"))
  b = k - int(np.sum(blocks_per_stage[:stage]))
  kind, c = path[1].rsplit("_", 1)
  c = int(c)
  if c == convs_per_block:  # the last one made: the projection shortcut
    name = f"downsample.{0 if kind == 'Conv' else 1}"
  else:
    name = f"{'conv' if kind == 'Conv' else 'bn'}{c + 1}"
  return f"layer{stage + 1}.{b}.{name}.{leaf}"


def _layout(model: resnet.ResNet, image_size: int) -> dict[str, tuple]:
  """{torchvision key: (collection, Flax path, shape)} of the model's variables."""
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, image_size, image_size, 3)), train=False))
  convs = 2 if model.block is resnet.BasicBlock else 3
  out = {}
  for col in ("params", "batch_stats"):
    for kp, leaf in jax.tree_util.tree_flatten_with_path(shapes[col])[0]:
      path = tuple(k.key for k in kp)
      out[_torch_key(path, model.stage_sizes, convs)] = (col, path, leaf.shape)
  return out


def _to_flax(key: str, a: np.ndarray) -> np.ndarray:
  if a.ndim == 4:  # [out, in, kh, kw] -> [kh, kw, in, out]
    return a.transpose(2, 3, 1, 0)
  if key == "fc.weight":
    return a.T
  return a


def convert(arch: str, state_dict: dict[str, np.ndarray], *, image_size: int = 224,
            where: str = "--weights") -> tuple[resnet.ResNet, dict]:
  """(model, variables) of torchvision-layout `state_dict` for `arch` ("resnet18"
  or "resnet50"); the number of classes is read from `fc.weight`.

  Raises WeightsError naming the first missing, unexpected or mis-shaped key.
  """
  if arch not in resnet.ARCHS:
    raise WeightsError(f"--arch must be one of {', '.join(resnet.ARCHS)}, got "
                       f"{arch!r}.")
  fc = state_dict.get("fc.weight")
  if fc is None or fc.ndim != 2:
    raise WeightsError(f"{where}: no 2-d fc.weight, so no torchvision/timm {arch} "
                       "classification head; keys start "
                       f"{sorted(state_dict)[:3]}.")
  width = state_dict.get("conv1.weight", np.zeros((64,))).shape[0]
  model = resnet.ARCHS[arch](num_classes=int(fc.shape[0]), width=int(width),
                             stem="imagenet")
  layout = _layout(model, image_size)
  used = {k for k in state_dict if k.endswith("." + _UNUSED)}
  extra = sorted(set(state_dict) - set(layout) - used)
  missing = [k for k in layout if k not in state_dict]
  bottleneck = any(re.search(r"\.conv3\.", k) for k in state_dict)
  hint = (" (a resnet50 file? pass --arch=resnet50)" if bottleneck and arch == "resnet18"
          else " (a resnet18 file? pass --arch=resnet18)"
          if not bottleneck and arch == "resnet50" else "")
  for keys, what in ((extra, "is not a variable of"), (missing, "is missing from")):
    if keys:
      raise WeightsError(f"{where}: key {keys[0]!r} {what} torchvision's {arch}"
                         f"{hint}; {len(keys)} such key(s).")
  variables = {"params": {}, "batch_stats": {}}
  for key, (col, path, shape) in layout.items():
    a = np.asarray(state_dict[key])
    if not np.issubdtype(a.dtype, np.floating):
      raise WeightsError(f"{where}: key {key!r} holds {a.dtype}, not floats.")
    a = _to_flax(key, a.astype(np.float32))
    if a.shape != tuple(shape):
      raise WeightsError(f"{where}: key {key!r} has shape "
                         f"{tuple(state_dict[key].shape)}; {arch} needs "
                         f"{_from_flax_shape(key, shape)}.")
    if not np.isfinite(a).all():
      raise WeightsError(f"{where}: key {key!r} holds non-finite values.")
    node = variables[col]
    for p in path[:-1]:
      node = node.setdefault(p, {})
    node[path[-1]] = a
  return model, variables


def to_state_dict(model: resnet.ResNet, variables: dict) -> dict[str, np.ndarray]:
  """The inverse of `convert`: torchvision's state_dict of jaxal's ResNet-18/50
  `variables` (ImageNet stem), e.g. to run the same weights in PyTorch."""
  out = {}
  for key, (col, path, _) in _layout(model, 32).items():
    a = variables[col]
    for p in path:
      a = a[p]
    a = np.asarray(a, np.float32)
    out[key] = a.transpose(3, 2, 0, 1) if a.ndim == 4 else (
        a.T if key == "fc.weight" else a)
    if key.endswith(".running_var"):
      out[key[:-len("running_var")] + _UNUSED] = np.zeros((), np.int64)
  return out


def _from_flax_shape(key: str, shape: tuple) -> tuple:
  if len(shape) == 4:
    return (shape[3], shape[2], shape[0], shape[1])
  return tuple(shape[::-1]) if key == "fc.weight" else tuple(shape)


def import_source(arch: str, weights: str, workdir: str, *,
                  classes: Optional[Sequence[str]] = None,
                  preprocess: Optional[Preprocess] = None) -> dict:
  """Writes a source work directory for `weights` in `workdir`; returns its
  config.

  Args:
    arch: "resnet18" or "resnet50".
    weights: a `.safetensors` or PyTorch state_dict file in torchvision's layout.
    workdir: a new or empty directory; written under a temporary name and
      renamed when complete, so a failed or killed import leaves nothing.
    classes: names of the head's classes (index = logit); None gives ImageNet's
      for a 1,000-class head and refuses any other head.
    preprocess: the evaluation transform; None gives torchvision's for the
      arch's reference weights (`DEFAULT_PREPROCESS`).
  """
  workdir = os.path.abspath(workdir)
  if os.path.exists(workdir) and (not os.path.isdir(workdir) or os.listdir(workdir)):
    raise WeightsError(f"--workdir {workdir} exists and is not empty; pass a new "
                       "or empty directory.")
  model, variables = convert(arch, read_state_dict(weights), where=weights)
  if classes is None:
    if model.num_classes != 1000:
      raise WeightsError(f"--weights {weights}: its head has {model.num_classes} "
                         "classes, not ImageNet's 1,000; pass --classes=FILE with "
                         "one name per line.")
    classes = imagenet_classes()
  classes = list(classes)
  if len(classes) != model.num_classes:
    raise WeightsError(f"--classes: {len(classes)} names for a head of "
                       f"{model.num_classes} classes.")
  preprocess = preprocess or DEFAULT_PREPROCESS[arch]
  cfg = {"kind": KIND, "arch": arch, "num_classes": model.num_classes,
         "width": model.width, "stem": model.stem, "image_size": preprocess.crop,
         "preprocess": preprocess.to_json(), "epochs": 0, "snapshot_every": 0,
         "weights": {"file": os.path.abspath(weights), "sha256": io.file_sha256(weights)}}
  with io.new_directory(workdir, tag="importing") as tmp:
    Snapshots(os.path.join(tmp, "checkpoints"), 0).save(0, variables)
    io.write_text(os.path.join(tmp, "classes.txt"), "\n".join(classes) + "\n")
    io.write_json(os.path.join(tmp, "config.json"), cfg)
  return cfg


def load_variables(workdir: str, cfg: dict) -> tuple[resnet.ResNet, dict]:
  """(model, variables) of an imported source (`cfg` is its config.json)."""
  model = resnet.ARCHS[cfg["arch"]](num_classes=cfg["num_classes"],
                                    width=cfg["width"], stem=cfg["stem"])
  size = cfg["image_size"]
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)), train=False))
  template = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype),
                                    {k: shapes[k] for k in ("params", "batch_stats")})
  found = Snapshots(os.path.join(workdir, "checkpoints"), 0).restore_latest(template)
  if found is None:
    raise InputError(f"source {workdir}: its imported weights are missing or "
                     "corrupt (see the warning above); import them again.")
  return model, found[1]
