r"""`jaxal embed` with imported DINOv2 and SigLIP 2 checkpoints against Hugging
Face transformers on the same weights.

A folder of JPEGs of odd sizes (333-500 px, as bench/embed.py makes them) is
embedded at 224 px by three foundation encoders, built from their real
configurations with random weights (no download):

- `siglip2_b16`: google/siglip2-base-patch16-224's `SiglipModel` (image tower
  768 wide, 12 layers, 12 heads, MLP 3072, patch 16, 224 px, gelu tanh, MAP
  head; the text tower at its real size but with a vocabulary of 4,096 instead
  of 256,000, which `embed` never reads: it saves ~750 MB per copy). Features:
  the MAP head's pooled embedding. Preprocessing: `SiglipImageProcessor`,
  224 x 224 bilinear, mean/std 0.5.
- `dinov2_s14`, `dinov2_b14`: facebook/dinov2-small/-base's `Dinov2Model` (384
  wide, 6 heads / 768 wide, 12 heads; 12 layers, MLP ratio 4, patch 14, position
  embeddings for 518 px, LayerScale, gelu). Features: the class token after the
  final norm (transformers' `pooler_output`). Preprocessing:
  `BitImageProcessor`, shorter side 256 bicubic, centre crop 224, ImageNet
  mean/std.

Contenders, in the same run, alternating within each round (the order reversed
every other round), on the same images, batch size and decode thread pool size:

- `jaxal embed`, the command's whole path (`jaxal.cli.embed.embed`: Pillow
  decode, the checkpoint's processor mirrored in a thread pool, the next chunk
  decoding during this one's model, XLA inference), from a source written by
  `jaxal.models.foundation.import_source` (`jaxal import-source
  --arch=dinov2|siglip`) with `--dtype` as its compute dtype;
- transformers: `AutoImageProcessor.from_pretrained(folder)` (its default in
  5.23, the torchvision backend) on PIL images decoded in a thread pool of the
  same size, then `SiglipVisionModel` (`pooler_output`, what
  `SiglipModel.get_image_features` returns) or `Dinov2Model` (`pooler_output`),
  `from_pretrained(folder)` of the same checkpoint folder, eval mode,
  `torch.no_grad()`, float32 (bfloat16 autocast with --dtype=bfloat16, the
  counterpart of jaxal's bfloat16 compute), `attn_implementation="sdpa"` (its
  default); "eager" attention is timed on the model alone too (first round
  only: it costs a batch per round and is a secondary number).
- Each side's decode/preprocess pipeline alone, and each model alone on one
  preprocessed batch in memory.

`jaxal embed` runs with `--chunk` equal to the batch, so the next chunk
decodes during this one's model as in a long run; each call also loads the
source (`source.load_workdir`, printed), a fixed cost that a 64-image folder
shows and a large one hides. Each model's rounds end with a ms-per-image
breakdown (end to end = model + pipeline + the rest) and the load average at
each round's start (the machine may be shared).

The checkpoint folder is written once per model: with PyTorch and transformers
installed, `Model(config).save_pretrained(folder)` (transformers' own random
initialisation, seeded); without them, the same keys and shapes from numpy
(then only jaxal's side runs). `preprocessor_config.json` is written as the
hub's checkpoints hold it. transformers is a reference only:
`python3 run.py test --torch` installs torch, torchvision and transformers into
.venv. On a GPU backend transformers runs on CUDA with the batch moved there, as
jaxal's embed does.

    python3 run.py bench vit_embed [--models=siglip2_b16,dinov2_s14,dinov2_b14]
        [--images=N --rounds=R --batch=B --dtype=float32|bfloat16] [--quick]

Each model's ratio (jaxal embed's images/s over transformers' end to end) is
printed on its own line; the last line is `vit_embed_speed_ratio_vs_transformers:
<x>`, their geometric mean (or `unavailable (...)` without the reference).
"""

from __future__ import annotations

import concurrent.futures
import gc
import json
import math
import os
import shutil
import tempfile
import time

import jaxal  # noqa: F401  (first: it sets XLA:CPU's options before JAX starts)
import jax
import numpy as np
from absl import app, flags
from PIL import Image

from _images import make_folder  # bench/, the script's folder

from jaxal import _xla_cpu
from jaxal.cli import embed as embed_lib
from jaxal.cli.workdir import Workdir
from jaxal.datasets import images as images_lib
from jaxal.models import foundation, inference, source

FLAGS = flags.FLAGS
MODELS = ("siglip2_b16", "dinov2_s14", "dinov2_b14")
flags.DEFINE_list("models", list(MODELS), f"Which of {', '.join(MODELS)}.")
flags.DEFINE_integer("images", 64, "JPEGs in the folder.")
flags.DEFINE_integer("batch", 32, "Images per model call (both sides).")
flags.DEFINE_integer("rounds", 3, "Rounds (median); the contenders alternate "
                     "within each.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"],
                  "jaxal's compute dtype (import-source's); transformers runs "
                  "under bfloat16 autocast with bfloat16.")
flags.DEFINE_bool("eager", True, "Also time transformers' eager attention on the "
                  "model alone.")
flags.DEFINE_bool("reference", True, "Time transformers when torch and "
                  "transformers import (--noreference: jaxal's side alone).")
flags.DEFINE_bool("quick", False, "Tiny sizes (8 images, batch 4, 1 round, 1 layer "
                  "per tower): checks the script only.")

# ------------------------------------------------------------ checkpoints
_R = 0.00392156862745098  # 1/255, as the hub's files write it
_IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
# facebook/dinov2-{small,base}/preprocessor_config.json
_DINOV2_PREP = {"crop_size": {"height": 224, "width": 224}, "do_center_crop": True,
                "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
                "do_resize": True, **_IMAGENET,
                "image_processor_type": "BitImageProcessor", "resample": 3,
                "rescale_factor": _R, "size": {"shortest_edge": 256}}
# google/siglip2-base-patch16-224/preprocessor_config.json (fixed resolution)
_SIGLIP_PREP = {"do_normalize": True, "do_rescale": True, "do_resize": True,
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                "image_processor_type": "SiglipImageProcessor",
                "processor_class": "SiglipProcessor", "resample": 2,
                "rescale_factor": _R, "size": {"height": 224, "width": 224}}


def _dinov2(hidden: int, heads: int, layers: int) -> dict:
  """facebook/dinov2-*'s config.json (transformers 5.23's Dinov2Config)."""
  return {"architectures": ["Dinov2Model"], "model_type": "dinov2",
          "attention_probs_dropout_prob": 0.0, "drop_path_rate": 0.0,
          "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "hidden_size": hidden,
          "image_size": 518, "initializer_range": 0.02, "layer_norm_eps": 1e-6,
          "layerscale_value": 1.0, "mlp_ratio": 4, "num_attention_heads": heads,
          "num_channels": 3, "num_hidden_layers": layers, "patch_size": 14,
          "qkv_bias": True, "use_swiglu_ffn": False}


def _siglip2_b16(layers: int) -> dict:
  """google/siglip2-base-patch16-224's config.json (a SiglipModel), the text
  tower's vocabulary 4,096 instead of 256,000."""
  tower = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": layers,
           "num_attention_heads": 12, "hidden_act": "gelu_pytorch_tanh",
           "layer_norm_eps": 1e-6, "attention_dropout": 0.0}
  return {"architectures": ["SiglipModel"], "model_type": "siglip",
          "initializer_factor": 1.0,
          "text_config": {"model_type": "siglip_text_model", "vocab_size": 4096,
                          "max_position_embeddings": 64, "projection_size": 768,
                          "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
                          **tower},
          "vision_config": {"model_type": "siglip_vision_model", "num_channels": 3,
                            "image_size": 224, "patch_size": 16,
                            "vision_use_head": True, **tower}}


# name -> (import-source arch, title, config.json, preprocessor_config.json)
def spec(name: str, layers: int):
  if name == "siglip2_b16":
    return ("siglip", "SigLIP 2 B/16 (google/siglip2-base-patch16-224's SiglipModel, "
            "text vocabulary 4,096 instead of 256,000)", _siglip2_b16(layers),
            _SIGLIP_PREP)
  if name == "dinov2_s14":
    return ("dinov2", "DINOv2 S/14 (facebook/dinov2-small's Dinov2Model)",
            _dinov2(384, 6, layers), _DINOV2_PREP)
  if name == "dinov2_b14":
    return ("dinov2", "DINOv2 B/14 (facebook/dinov2-base's Dinov2Model)",
            _dinov2(768, 12, layers), _DINOV2_PREP)
  raise app.UsageError(f"--models: unknown model {name!r}; known: {', '.join(MODELS)}")


def _linear(key: str, n_out: int, n_in: int) -> dict:
  return {key + ".weight": (n_out, n_in), key + ".bias": (n_out,)}


def _norm(key: str, d: int) -> dict:
  return {key + ".weight": (d,), key + ".bias": (d,)}


def hub_shapes(cfg: dict) -> dict:
  """{key: shape} of the checkpoint the hub holds for `cfg` (config.json), in
  its public key layout (what `save_pretrained` writes)."""
  out = {}
  if cfg["model_type"] == "dinov2":
    d, p, m = cfg["hidden_size"], cfg["patch_size"], int(cfg["hidden_size"] *
                                                          cfg["mlp_ratio"])
    g = cfg["image_size"] // p
    out.update({"embeddings.cls_token": (1, 1, d), "embeddings.mask_token": (1, d),
                "embeddings.position_embeddings": (1, g * g + 1, d),
                "embeddings.patch_embeddings.projection.weight": (d, 3, p, p),
                "embeddings.patch_embeddings.projection.bias": (d,)})
    for i in range(cfg["num_hidden_layers"]):
      k = f"encoder.layer.{i}"
      out.update(_norm(f"{k}.norm1", d) | _norm(f"{k}.norm2", d))
      for n in ("query", "key", "value"):
        out.update(_linear(f"{k}.attention.attention.{n}", d, d))
      out.update(_linear(f"{k}.attention.output.dense", d, d))
      out.update(_linear(f"{k}.mlp.fc1", m, d) | _linear(f"{k}.mlp.fc2", d, m))
      out[f"{k}.layer_scale1.lambda1"] = out[f"{k}.layer_scale2.lambda1"] = (d,)
    out.update(_norm("layernorm", d))
    return out

  def blocks(prefix, c):
    d, m = c["hidden_size"], c["intermediate_size"]
    for i in range(c["num_hidden_layers"]):
      k = f"{prefix}.encoder.layers.{i}"
      out.update(_norm(f"{k}.layer_norm1", d) | _norm(f"{k}.layer_norm2", d))
      for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
        out.update(_linear(f"{k}.self_attn.{n}", d, d))
      out.update(_linear(f"{k}.mlp.fc1", m, d) | _linear(f"{k}.mlp.fc2", d, m))
  v, t = cfg["vision_config"], cfg["text_config"]
  d, m, p = v["hidden_size"], v["intermediate_size"], v["patch_size"]
  g = v["image_size"] // p
  out.update({"vision_model.embeddings.patch_embedding.weight": (d, 3, p, p),
              "vision_model.embeddings.patch_embedding.bias": (d,),
              "vision_model.embeddings.position_embedding.weight": (g * g, d)})
  blocks("vision_model", v)
  out.update(_norm("vision_model.post_layernorm", d))
  out.update({"vision_model.head.probe": (1, 1, d),
              "vision_model.head.attention.in_proj_weight": (3 * d, d),
              "vision_model.head.attention.in_proj_bias": (3 * d,)})
  out.update(_linear("vision_model.head.attention.out_proj", d, d))
  out.update(_norm("vision_model.head.layernorm", d))
  out.update(_linear("vision_model.head.mlp.fc1", m, d) |
             _linear("vision_model.head.mlp.fc2", d, m))
  dt = t["hidden_size"]
  out.update({"text_model.embeddings.token_embedding.weight": (t["vocab_size"], dt),
              "text_model.embeddings.position_embedding.weight":
                  (t["max_position_embeddings"], dt)})
  blocks("text_model", t)
  out.update(_norm("text_model.final_layer_norm", dt))
  out.update(_linear("text_model.head", t["projection_size"], dt))
  out.update({"logit_scale": (1,), "logit_bias": (1,)})
  return out


def write_checkpoint(folder: str, cfg: dict, prep: dict, torch, transformers) -> str:
  """The hub-style folder (config.json, model.safetensors,
  preprocessor_config.json) of `cfg` with random weights: transformers'
  `Model(config).save_pretrained` when given, else numpy's; returns how."""
  os.makedirs(folder, exist_ok=True)
  if transformers is not None:
    torch.manual_seed(0)
    if cfg["model_type"] == "siglip":
      model = transformers.SiglipModel(transformers.SiglipConfig(**cfg))
    else:
      model = transformers.Dinov2Model(transformers.Dinov2Config(**cfg))
    model.save_pretrained(folder)
    del model
    how = "transformers' save_pretrained of Model(config), torch.manual_seed(0)"
  else:
    from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
    rng = np.random.default_rng(0)
    sd = {}
    for k, shape in sorted(hub_shapes(cfg).items()):
      if k.endswith("lambda1"):
        sd[k] = np.full(shape, cfg.get("layerscale_value", 1.0), np.float32)
      elif len(shape) >= 2 and not k.endswith(("token", "embeddings", "probe",
                                                "embedding.weight")):
        sd[k] = (rng.standard_normal(shape, np.float32)
                 / np.float32(math.sqrt(np.prod(shape[1:]))))
      elif len(shape) == 1 and k.endswith(".weight"):
        sd[k] = np.ones(shape, np.float32)  # LayerNorm scales
      else:
        sd[k] = rng.standard_normal(shape, np.float32) * np.float32(0.02)
    save_file(sd, os.path.join(folder, "model.safetensors"),
              metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
      json.dump(cfg, f, indent=2)
    how = "numpy (seeded), the hub's keys and shapes"
  with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
    json.dump(prep, f, indent=2)
  return how


# ------------------------------------------------------------------ images
THREADS = min(8, os.cpu_count() or 1)  # jaxal's load_batch default, both sides


# ------------------------------------------------------------------- jaxal
def jaxal_embed(folder: str, src: str, work: str, batch: int) -> float:
  """Images/s of a fresh `jaxal embed` of the folder."""
  wd = os.path.join(work, "wd")
  shutil.rmtree(wd, ignore_errors=True)
  t = time.perf_counter()
  # chunk = batch: the next chunk decodes during this one's model, as in a long run
  pool = embed_lib.embed(Workdir(wd), images_dir=folder, source_dir=src,
                         chunk=batch, batch_size=batch, log=lambda m: None)
  n = len(pool.paths)
  rate = n / (time.perf_counter() - t)
  shutil.rmtree(wd, ignore_errors=True)
  return rate


def jaxal_pipeline(folder: str, paths, prep, batch: int) -> float:
  """Images/s of jaxal's decode + preprocess (`load_batch` then `normalize`)."""
  t = time.perf_counter()
  for s in range(0, len(paths), batch):
    prep.normalize(images_lib.load_batch(folder, paths[s:s + batch], prep.output_size,
                                         preprocess=prep)[0])
  return len(paths) / (time.perf_counter() - t)


# ------------------------------------------------------------ transformers
class Reference:
  """transformers' side: the checkpoint's processor and model on the device
  jaxal uses (CUDA on a GPU backend)."""

  def __init__(self, torch, transformers, arch: str, folder: str, dtype: str,
               eager: bool):
    self.torch = torch
    self.dev = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() \
        else "cpu"
    self.proc = transformers.AutoImageProcessor.from_pretrained(folder)
    cls = transformers.SiglipVisionModel if arch == "siglip" else \
        transformers.Dinov2Model
    self.models = {"sdpa": cls.from_pretrained(folder, attn_implementation="sdpa")
                   .eval().to(self.dev)}
    if eager:
      self.models["eager"] = cls.from_pretrained(
          folder, attn_implementation="eager").eval().to(self.dev)
    self.bf16 = dtype == "bfloat16"

  def autocast(self):
    return self.torch.autocast(device_type=self.dev, dtype=self.torch.bfloat16,
                               enabled=self.bf16)

  def sync(self):
    if self.dev == "cuda":
      self.torch.cuda.synchronize()

  def features(self, x, attn: str = "sdpa"):
    with self.torch.no_grad(), self.autocast():
      return self.models[attn](pixel_values=x).pooler_output

  def pixel_values(self, imgs):
    return self.proc(images=imgs, return_tensors="pt")["pixel_values"]

  @staticmethod
  def decode(path: str):
    with Image.open(path) as img:
      return img.convert("RGB")

  def end_to_end(self, folder: str, paths, batch: int) -> float:
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(THREADS) as ex:
      for s in range(0, len(paths), batch):
        imgs = list(ex.map(self.decode, [os.path.join(folder, p)
                                         for p in paths[s:s + batch]]))
        self.features(self.pixel_values(imgs).to(self.dev)).float().cpu()
    self.sync()
    return len(paths) / (time.perf_counter() - t)

  def pipeline(self, folder: str, paths, batch: int) -> float:
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(THREADS) as ex:
      for s in range(0, len(paths), batch):
        self.pixel_values(list(ex.map(self.decode, [os.path.join(folder, p)
                                                     for p in paths[s:s + batch]])))
    return len(paths) / (time.perf_counter() - t)

  def model_only(self, x, attn: str) -> float:
    t = time.perf_counter()
    self.features(x, attn)
    self.sync()
    return x.shape[0] / (time.perf_counter() - t)


# ------------------------------------------------------------------- main
EAGER = "transformers model only (eager, round 1)"


def _median_line(label: str, rounds: list) -> str:
  return (f"  {label:34s}: {np.median(rounds):8.2f} images/s (rounds: "
          f"{', '.join(f'{r:.2f}' for r in rounds)})")


def bench_model(name: str, work: str, folder: str, paths, torch, transformers,
                layers: int) -> dict:
  """Runs one model's rounds; prints its lines; returns the medians."""
  arch, title, cfg, prep_json = spec(name, layers)
  ckpt, src = os.path.join(work, name), os.path.join(work, name + "-src")
  t = time.perf_counter()
  how = write_checkpoint(ckpt, cfg, prep_json, torch, transformers)
  t_write = time.perf_counter() - t
  t = time.perf_counter()
  foundation.import_source(arch, ckpt, src, compute_dtype=FLAGS.dtype)
  t_import = time.perf_counter() - t
  trained = source.load_workdir(src)
  prep, batch = trained.preprocess, FLAGS.batch
  params = sum(int(np.prod(np.shape(a))) for a in jax.tree_util.tree_leaves(
      trained.final))
  vc = trained.config["vision"]
  print(f"\n== {name}: {title}")
  print(f"  image tower: {vc['hidden']} wide, {vc['layers']} layers, {vc['heads']} "
        f"heads, MLP {vc['mlp']}, patch {vc['patch']}, {vc['mlp_kind']}, "
        f"{vc['pool']} features ({trained.config['vision']['hidden']}), "
        f"{params / 1e6:.1f}M parameters; "
        f"{(prep.output_size // vc['patch']) ** 2} patches at {prep.output_size} px")
  print(f"  preprocessing: {prep.to_json()}")
  print(f"  checkpoint: {how} ({t_write:.1f} s); import-source "
        f"(compute dtype {FLAGS.dtype}) {t_import:.1f} s")
  x = prep.normalize(images_lib.load_batch(folder, paths[:batch], prep.output_size,
                                           preprocess=prep)[0])

  def jaxal_model():
    t = time.perf_counter()
    inference.predict(trained.model, trained.final, x, batch_size=batch)
    return x.shape[0] / (time.perf_counter() - t)
  t = time.perf_counter()
  jaxal_model()  # compiles the computation embed runs (one per model and batch)
  t_compile = time.perf_counter() - t
  t = time.perf_counter()
  source.load_workdir(src)
  print(f"  jaxal: compilation + first batch {t_compile:.1f} s; each embed call "
        f"first loads the source (source.load_workdir: {time.perf_counter() - t:.2f} s)")
  runs = {"jaxal embed (end to end)": lambda: jaxal_embed(folder, src, work, batch),
          "jaxal model only": jaxal_model,
          "jaxal pipeline alone": lambda: jaxal_pipeline(folder, paths, prep, batch)}
  ref = None
  if transformers is not None:
    ref = Reference(torch, transformers, arch, ckpt, FLAGS.dtype, FLAGS.eager)
    print(f"  transformers: {type(ref.proc).__name__} (AutoImageProcessor's "
          f"default), {type(ref.models['sdpa']).__name__} on {ref.dev}, "
          f"{'bfloat16 autocast' if ref.bf16 else 'float32'}")
    xt = ref.pixel_values([ref.decode(os.path.join(folder, p))
                           for p in paths[:batch]]).to(ref.dev)
    # The same weights: both models on jaxal's preprocessed batch (NHWC -> NCHW).
    same = torch.from_numpy(np.ascontiguousarray(x[:4].transpose(0, 3, 1, 2)))
    got = inference.predict(trained.model, trained.final, x[:4], batch_size=batch)[0]
    for attn in ref.models:
      want = ref.features(same.to(ref.dev), attn).float().cpu().numpy()
      err = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
      print(f"  same weights: max |jaxal - transformers ({attn})| / max "
            f"|transformers| = {err:.1e} on 4 images given the same input")
    ref.model_only(xt, "sdpa")  # warm
    runs["transformers end to end (sdpa)"] = lambda: ref.end_to_end(folder, paths,
                                                                      batch)
    runs["transformers model only (sdpa)"] = lambda: ref.model_only(xt, "sdpa")
    runs["transformers pipeline alone"] = lambda: ref.pipeline(folder, paths, batch)
    if "eager" in ref.models:  # the first round only: a secondary number
      runs[EAGER] = lambda: ref.model_only(xt, "eager")
  got = {k: [] for k in runs}
  loads = []
  for r in range(FLAGS.rounds):
    loads.append(os.getloadavg()[0])
    order = list(runs) if r % 2 == 0 else list(runs)[::-1]
    for k in order:
      if k != EAGER or r == 0:
        got[k].append(runs[k]())
  for k, v in got.items():
    print(_median_line(k, v))
  print(f"  1-minute load average at each round's start: "
        f"{', '.join(f'{a:.2f}' for a in loads)} ({os.cpu_count()} logical CPUs; "
        "other processes' load slows every contender)")
  med = {k: float(np.median(v)) for k, v in got.items()}
  if ref is not None:
    e2e = med["jaxal embed (end to end)"] / med["transformers end to end (sdpa)"]
    mo = med["jaxal model only"] / med["transformers model only (sdpa)"]
    line = f"  jaxal / transformers: end to end {e2e:.2f}, model only {mo:.2f} (sdpa)"
    if EAGER in med:
      line += f", {med['jaxal model only'] / med[EAGER]:.2f} (eager, 1 round)"
    print(line)
    # Where the time goes: seconds per image, end to end vs model vs pipeline.
    for side, e, m, p in (("jaxal", "jaxal embed (end to end)", "jaxal model only",
                           "jaxal pipeline alone"),
                          ("transformers", "transformers end to end (sdpa)",
                           "transformers model only (sdpa)",
                           "transformers pipeline alone")):
      print(f"  {side:12s} ms per image: end to end {1e3 / med[e]:7.1f} = model "
            f"{1e3 / med[m]:7.1f} + pipeline {1e3 / med[p]:5.1f} + other "
            f"{1e3 / med[e] - 1e3 / med[m] - 1e3 / med[p]:+6.1f}")
    del ref
  del trained, x
  gc.collect()
  shutil.rmtree(ckpt, ignore_errors=True)
  shutil.rmtree(src, ignore_errors=True)
  return med


def main(argv):
  del argv
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)  # orbax's per-save INFO lines
  layers = 12
  if FLAGS.quick:
    FLAGS.images, FLAGS.batch, FLAGS.rounds, layers = 8, 4, 1, 1
  for m in FLAGS.models:
    spec(m, 1)  # refuses an unknown name before any work
  torch = transformers = None
  missing, why = "--noreference", "not asked for"
  if FLAGS.reference:
    try:
      import torch  # pylint: disable=g-import-not-at-top
      import transformers  # pylint: disable=g-import-not-at-top
      transformers.logging.set_verbosity_error()
      transformers.utils.logging.disable_progress_bar()
    except ImportError as e:
      torch = transformers = None
      missing = "PyTorch/transformers not installed"
      why = (f"{e}; `python3 run.py test --torch` installs torch, torchvision and "
             "transformers into .venv")
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); jax "
        f"{jax.__version__}; " + (
            f"torch {torch.__version__}, transformers {transformers.__version__} "
            f"({torch.get_num_threads()} threads, "
            f"{torch.backends.cpu.get_cpu_capability()} kernels)"
            if transformers else f"no reference: {missing} ({why})"))
  print(f"cpu: {_xla_cpu.cpu_description()}")
  print(f"xla:cpu routing: {_xla_cpu.routing()}")
  print(f"{FLAGS.images} JPEGs of 333-500 px at 224 px, batch {FLAGS.batch} (both "
        f"sides), decode threads {THREADS} (both sides), {FLAGS.rounds} round(s), "
        f"jaxal compute dtype {FLAGS.dtype}"
        + (f", {layers} layer(s) per tower (--quick)" if FLAGS.quick else ""))
  work = tempfile.mkdtemp(prefix="jaxal-bench-vit-embed-")
  ratios = {}
  try:
    folder = os.path.join(work, "images")
    make_folder(folder, FLAGS.images)
    paths = images_lib.scan(folder)
    for name in FLAGS.models:
      med = bench_model(name, work, folder, paths, torch, transformers, layers)
      if transformers is not None:
        ratios[name] = med["jaxal embed (end to end)"] / \
            med["transformers end to end (sdpa)"]
  finally:
    shutil.rmtree(work, ignore_errors=True)
  print()
  if transformers is None:
    for name in FLAGS.models:
      print(f"{name}_speed_ratio_vs_transformers: unavailable ({missing})")
    print(f"vit_embed_speed_ratio_vs_transformers: unavailable ({missing})")
    return
  for name, r in ratios.items():
    print(f"{name}_speed_ratio_vs_transformers: {r:.2f}")
  geo = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
  print(f"vit_embed_speed_ratio_vs_transformers: {geo:.2f}")


if __name__ == "__main__":
  app.run(main)
