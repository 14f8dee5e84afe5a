"""A foundation encoder (DINOv2, SigLIP / SigLIP 2) as a source work
directory: `jaxal import-source --arch=dinov2|siglip --weights=DIR`.

M_S gives the pool's features f (main paper section 3; method guide §1); a
frozen foundation encoder gives features and no source-class probabilities,
as a SimCLR encoder does (`ssl_source`): `embed` writes no probs.npy, the
methods that rank by probabilities are refused naming them, and `--ensemble`
is refused (one model, no snapshots). SigLIP's text tower is kept beside the
image tower, with the checkpoint's tokenizer files, for class names and search
by text (`load_text`, `text_embeddings`, `image_text_logits`). The work
directory::

    WORKDIR/config.json     {"kind": "foundation", "arch", "model_type",
                             "vision": ViTConfig, "text": TextConfig or null,
                             "image_size", "preprocess", "features",
                             "compute_dtype", "weights": {file: sha256}}
    WORKDIR/checkpoints/    the image tower's variables (orbax, verified manifest)
    WORKDIR/text_checkpoints/  SigLIP: the text tower's, logit scale and bias
    WORKDIR/tokenizer/      SigLIP: the checkpoint's tokenizer files

Written under a temporary name and renamed when complete: a failed or killed
import leaves nothing (`jaxal.models.pretrained`'s rule).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _xla_cpu, io
from jaxal.datasets import images as images_lib
from jaxal.models import hf_vit, vit
from jaxal.models.checkpoint import Snapshots
from jaxal.errors import InputError

KIND = "foundation"
# config.json goes with them: transformers picks SigLIP 2's lowercasing tokenizer
# by its model_type (`text_tokenizer`).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model",
                   "tokenizer.model", "special_tokens_map.json")


def _preprocess(folder: str) -> images_lib.Preprocess:
  path = os.path.join(folder, "preprocessor_config.json")
  cfg = hf_vit.read_config(folder, "preprocessor_config.json")
  try:
    return images_lib.preprocess_from_hf(cfg, source=path)
  except InputError as e:
    raise hf_vit.CheckpointError(str(e)) from None


def import_source(arch: str, weights: str, workdir: str, *,
                  pool: Optional[str] = None, compute_dtype: str = "float32"
                  ) -> dict:
  """Converts the checkpoint folder `weights` into a source work directory
  `workdir` (new or empty); returns its config.

  Args:
    arch: "dinov2" (DINOv2, with or without registers) or "siglip" (SigLIP and
      the fixed-resolution SigLIP 2: `SiglipModel`).
    weights: the Hugging Face checkpoint folder.
    workdir: where the source goes.
    pool: DINOv2's features: "cls" (default) or "cls_mean"; SigLIP: "map".
    compute_dtype: "float32" or "bfloat16" for `embed` (parameters stay float32).
  """
  workdir = os.path.abspath(workdir)
  if os.path.exists(workdir) and (not os.path.isdir(workdir) or os.listdir(workdir)):
    raise hf_vit.CheckpointError(f"--workdir {workdir} exists and is not empty; "
                                 "pass a new or empty directory.")
  if not os.path.isdir(weights):
    raise hf_vit.CheckpointError(f"--weights {weights!r} is not a folder: with "
                                 f"--arch={arch}, pass a Hugging Face checkpoint "
                                 "folder (config.json, model.safetensors, "
                                 "preprocessor_config.json).")
  vit.compute_dtype(compute_dtype)
  cfg_json = hf_vit.read_config(weights)
  where = os.path.join(weights, "config.json")
  hf_vit.configs(arch, cfg_json, where, pool=pool)  # refuse early, before reading
  prep = _preprocess(weights)
  vision, text, variables = hf_vit.convert(arch, cfg_json, hf_vit.read_weights(weights),
                                           where=weights, pool=pool)
  tok_files = []
  if text is not None:
    tok_files = [f for f in TOKENIZER_FILES if os.path.isfile(os.path.join(weights, f))]
    if tok_files:
      tok_files.append("config.json")
  files = sorted({"config.json", "preprocessor_config.json", *tok_files,
                  *hf_vit.weight_files(weights)})
  cfg = {"kind": KIND, "arch": arch, "model_type": cfg_json.get("model_type"),
         "vision": dataclasses.asdict(vision),
         "text": dataclasses.asdict(text) if text is not None else None,
         "image_size": prep.output_size,
         "preprocess": prep.to_json(), "features": vision.pool,
         "compute_dtype": compute_dtype, "epochs": 0, "snapshot_every": 0,
         "weights": {"folder": os.path.abspath(weights),
                     "sha256": {f: io.file_sha256(os.path.join(weights, f))
                                for f in files}}}
  with io.new_directory(workdir, tag="importing") as tmp:
    # Two checkpoints: `embed` restores the image tower alone (SigLIP 2's text
    # embedding table alone is 786 MB), the text tower is read for text only.
    Snapshots(os.path.join(tmp, "checkpoints"), 0).save(
        0, {"vision": variables["vision"]})
    if text is not None:
      Snapshots(os.path.join(tmp, "text_checkpoints"), 0).save(
          0, {k: v for k, v in variables.items() if k != "vision"})
    if tok_files:
      os.makedirs(os.path.join(tmp, "tokenizer"))
      for f in tok_files:
        shutil.copyfile(os.path.join(weights, f), os.path.join(tmp, "tokenizer", f))
    io.write_json(os.path.join(tmp, "config.json"), cfg)
  return cfg


def _configs(cfg: dict) -> tuple[vit.ViTConfig, Optional[vit.TextConfig]]:
  vision = vit.ViTConfig(**cfg["vision"])
  text = vit.TextConfig(**cfg["text"]) if cfg.get("text") else None
  return vision, text


def _variables(workdir: str, cfg: dict, part: str = "vision") -> dict:
  """The image tower's variables ({"vision"}), or the text tower's ({"text",
  "logit_scale", "logit_bias"}) with `part="text"`."""
  vision, text = _configs(cfg)
  if part == "vision":
    folder, template = "checkpoints", {"vision": hf_vit.templates(vision, None)["vision"]}
  else:
    folder = "text_checkpoints"
    template = {k: v for k, v in hf_vit.templates(vision, text).items() if k != "vision"}
  found = Snapshots(os.path.join(os.path.abspath(workdir), folder), 0) \
      .restore_latest(template)
  if found is None:
    raise InputError(f"source {workdir}: its imported weights are missing or "
                     "corrupt (see the warning above); import them again.")
  return found[1]


def load(workdir: str, cfg: dict):
  """(image tower module, its variables) of an imported foundation source
  (`cfg` its config.json): `apply` gives (logits [N, 0], features)."""
  vision, _ = _configs(cfg)
  model = vit.VisionTransformer(vision, dtype=vit.compute_dtype(cfg.get("compute_dtype")))
  return model, {"params": _variables(workdir, cfg)["vision"]}


@dataclasses.dataclass(frozen=True)
class TextTower:
  """SigLIP's text tower of a source: the module, its variables, the
  checkpoint's tokenizer, and the pair scoring's logit scale and bias."""
  model: vit.TextTransformer
  variables: dict
  tokenizer: object
  logit_scale: float
  logit_bias: float


def load_text(workdir: str, cfg: Optional[dict] = None) -> TextTower:
  """The text tower of a SigLIP source; ValueError naming what is missing for
  a source without one (DINOv2 has no text tower) or without its tokenizer."""
  from jaxal.models import text_tokenizer  # pylint: disable=g-import-not-at-top
  cfg = cfg or io.read_json(os.path.join(workdir, "config.json"))
  if not cfg or cfg.get("kind") != KIND or not cfg.get("text"):
    raise InputError(f"source {workdir} has no text tower: text needs a SigLIP "
                     "source (jaxal import-source --arch=siglip).")
  folder = os.path.join(workdir, "tokenizer")
  if not os.path.isdir(folder):
    raise InputError(f"source {workdir}: the checkpoint had no tokenizer files "
                     f"({', '.join(TOKENIZER_FILES[:3])}); import it again from a "
                     "folder that has them.")
  _, text = _configs(cfg)
  tok = text_tokenizer.load(folder, max_length=text.max_length)
  v = _variables(workdir, cfg, "text")
  model = vit.TextTransformer(text, dtype=vit.compute_dtype(cfg.get("compute_dtype")))
  scalar = lambda a: float(np.asarray(a).reshape(-1)[0])  # noqa: E731 (orbax may add an axis)
  return TextTower(model, {"params": v["text"]}, tok, scalar(v["logit_scale"]),
                   scalar(v["logit_bias"]))


def overlong(tower: TextTower, texts: Sequence[str]) -> np.ndarray:
  """Positions in `texts` whose tokens fill the whole text length (no padding
  left), so that they may have been cut."""
  _, mask = tower.tokenizer.encode_with_mask(list(texts))
  return np.flatnonzero(mask.min(axis=1) > 0)


def text_embeddings(tower: TextTower, texts: Sequence[str]) -> np.ndarray:
  """[len(texts), projection] float32: the text tower's pooled embeddings (not
  normalised), tokenised as the checkpoint's tokenizer does (padded to the
  maximum length)."""
  texts = list(texts)
  if not texts or not all(isinstance(t, str) for t in texts):
    raise InputError("texts must be a non-empty list of strings.")
  ids = np.asarray(tower.tokenizer.encode(texts), np.int32)
  out = _text_apply(tower.model)(tower.variables, jnp.asarray(ids))
  return np.asarray(out, np.float32)


@jax.jit
def _logits(image_embeds, text_embeds, scale, bias):
  return vit.logits_per_image(image_embeds, text_embeds, scale, bias)


@functools.lru_cache(maxsize=8)
def _text_apply(model):
  return jax.jit(model.apply, compiler_options=_xla_cpu.inference_options(
      jax.default_backend(), transformer=True))


def image_text_logits(tower: TextTower, image_embeds, texts: Sequence[str]
                      ) -> np.ndarray:
  """[images, texts] SigLIP logits (the reference's `logits_per_image`) of
  pooled image embeddings against `texts`; their sigmoid is the probability
  that a text describes an image."""
  t = text_embeddings(tower, texts)
  return np.asarray(_logits(jnp.asarray(image_embeds, jnp.float32), jnp.asarray(t),
                            tower.logit_scale, tower.logit_bias))
