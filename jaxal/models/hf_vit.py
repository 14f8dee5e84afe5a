"""Hugging Face DINOv2 and SigLIP / SigLIP 2 checkpoint folders as jaxal's
ViTs (`jaxal.models.vit`), read without PyTorch or transformers, exactly.

A checkpoint folder as the hub holds it: `config.json`, `model.safetensors`
(or shards listed in `model.safetensors.index.json`), `preprocessor_config.json`
and, for SigLIP's text tower, the tokenizer's files. What is read::

    model_type               tower(s)                 features
    dinov2                   DINOv2 ViT-S/B/L/g-14    class token after the final
    dinov2_with_registers    ... with register tokens norm (or [class, mean of
                                                      patches]: `pool="cls_mean"`)
    siglip                   SigLIP / SigLIP 2 fixed- the MAP head's pooled
                             resolution image + text  embedding
                             towers (`SiglipModel`)

SigLIP 2's NaFlex checkpoints (`model_type: siglip2`, variable resolution and
aspect ratio) are not supported: they are refused by name.

Sizes come from config.json (hidden size, layers, heads, MLP size or ratio,
patch, image size, registers, LayerScale, SwiGLU, vocabulary, text length).
The weights: every key is used and every shape checked against the Flax
module's; a key the architecture does not have is refused by name, as is a
missing one, before anything is written (`jaxal.models.pretrained`'s rules).
Read and dropped, by name: DINOv2's `mask_token` (masked pretraining only) and
the `position_ids` buffers older SigLIP checkpoints stored. Both key layouts
are read: the hub's (DINOv2's `attention.attention.query`, `mlp.weights_in`,
...; what the public checkpoints hold) and the renamed one of transformers 5
(`attention.q_proj`, `mlp.gate_proj`, ...). float32, float16 and bfloat16
tensors are read (converted to float32) by a small safetensors reader here:
a truncated or malformed file is refused naming the file.

How it maps: PyTorch Linear weights [out, in] -> Flax kernels [in, out] (the
attention's split per head), the patch convolution [D, C, p, p] -> [p, p, C,
D], LayerNorm weight/bias -> scale/bias, LayerScale `lambda1` -> `scale`, the
SwiGLU `weights_in` [2h, D] -> its gate (first half) and up (second half)
projections, SigLIP's MAP head `in_proj_weight` [3D, D] -> query, key, value.
"""

from __future__ import annotations

import functools
import json
import os
import struct
from typing import Any, Optional

import jax
import numpy as np

from jaxal.models import vit
from jaxal.errors import InputError

ARCHS = ("dinov2", "siglip")
_MODEL_TYPES = {"dinov2": ("dinov2", "dinov2_with_registers"),
                "siglip": ("siglip",)}
_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"),
           "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "BF16": np.dtype("<u2")}
_DROPPED = ("embeddings.mask_token", "position_ids")


class CheckpointError(InputError):
  """A checkpoint folder that does not hold the architecture's weights; the
  message names the file and key."""


# ------------------------------------------------------------- safetensors
def read_safetensors(path: str) -> dict[str, np.ndarray]:
  """{key: array} of a .safetensors file (float32/16/64, bfloat16 as
  float32, int64/32), checked against the file's length."""
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    head = f.read(8)
    if len(head) < 8:
      raise CheckpointError(f"{path}: not a safetensors file (shorter than its "
                            "8-byte header length).")
    (n,) = struct.unpack("<Q", head)
    if n > min(size - 8, 100 << 20):
      raise CheckpointError(f"{path}: not a safetensors file (header of {n} bytes "
                            f"in a file of {size}).")
    try:
      header = json.loads(f.read(n))
    except ValueError as e:
      raise CheckpointError(f"{path}: unreadable safetensors header ({e}).") from None
  base = 8 + n
  data = np.memmap(path, np.uint8, mode="r") if size > base else np.zeros(0, np.uint8)
  out = {}
  for key, info in header.items():
    if key == "__metadata__":
      continue
    try:
      dtype, shape, (lo, hi) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
    except (KeyError, TypeError, ValueError):
      raise CheckpointError(f"{path}: malformed header entry for {key!r}.") from None
    if dtype not in _DTYPES:
      raise CheckpointError(f"{path}: key {key!r} holds {dtype}; jaxal reads "
                            "F32, F16, BF16, F64 and integer tensors.")
    if not 0 <= lo <= hi:
      raise CheckpointError(f"{path}: malformed offsets for {key!r}: {lo}..{hi}.")
    if base + hi > size:
      raise CheckpointError(f"{path}: truncated: key {key!r} ends at byte "
                            f"{base + hi} of a {size}-byte file; download it again.")
    count = int(np.prod(shape)) if shape else 1
    if hi - lo != count * _DTYPES[dtype].itemsize:
      raise CheckpointError(f"{path}: key {key!r}: {hi - lo} bytes for shape "
                            f"{list(shape)} of {dtype}.")
    if key in out:
      raise CheckpointError(f"{path}: key {key!r} appears twice.")
    raw = data[base + lo:base + hi]
    a = np.frombuffer(raw, _DTYPES[dtype])
    if dtype == "BF16":
      a = (a.astype(np.uint32) << 16).view(np.float32)
    out[key] = a.reshape(shape)
  return out


def weight_files(folder: str) -> list[str]:
  """The folder's files that hold its weights, by name: model.safetensors, or
  model.safetensors.index.json and the shards it lists (each checked to exist)."""
  single = os.path.join(folder, "model.safetensors")
  index = single + ".index.json"
  if os.path.isfile(single):
    return ["model.safetensors"]
  if os.path.isfile(index):
    with open(index, encoding="utf-8") as f:
      shards = sorted(set(json.load(f).get("weight_map", {}).values()))
    if not shards:
      raise CheckpointError(f"{index}: lists no shard (no weight_map).")
    for s in shards:
      if not os.path.isfile(os.path.join(folder, s)):
        raise CheckpointError(f"{index} lists {s}, which is missing from {folder}.")
    return [os.path.basename(index)] + shards
  hint = (" (it holds pytorch_model.bin: convert it once to safetensors, e.g. "
          "save_pretrained(..., safe_serialization=True))"
          if os.path.isfile(os.path.join(folder, "pytorch_model.bin")) else "")
  raise CheckpointError(f"--weights {folder}: no model.safetensors (nor "
                        f"model.safetensors.index.json){hint}.")


def read_weights(folder: str) -> dict[str, np.ndarray]:
  """Every tensor of the folder's `weight_files`, a key in one shard only."""
  out = {}
  for name in weight_files(folder):
    if name.endswith(".json"):
      continue
    p = os.path.join(folder, name)
    part = read_safetensors(p)
    twice = sorted(set(part) & set(out))
    if twice:
      raise CheckpointError(f"{p}: key {twice[0]!r} is in another shard too.")
    out.update(part)
  return out


def read_config(folder: str, name: str = "config.json") -> dict:
  """The JSON object of the checkpoint folder's `name` (config.json or
  preprocessor_config.json), refused naming the file when missing or not a
  JSON object."""
  path = os.path.join(folder, name)
  if not os.path.isfile(path):
    raise CheckpointError(f"--weights {folder}: no {name}; pass a Hugging Face "
                          "checkpoint folder (config.json, model.safetensors, "
                          "preprocessor_config.json).")
  try:
    with open(path, encoding="utf-8") as f:
      cfg = json.load(f)
  except ValueError as e:
    raise CheckpointError(f"{path}: not valid JSON ({e}).") from None
  if not isinstance(cfg, dict):
    raise CheckpointError(f"{path}: expected a JSON object.")
  return cfg


# ----------------------------------------------------------------- configs
def _get(cfg: dict, key: str, where: str, default: Any = None, kind=int):
  v = cfg.get(key, default)
  if v is None:
    raise CheckpointError(f"{where}: {key} is missing.")
  if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
    raise CheckpointError(f"{where}: {key} must be an integer, got {v!r}.")
  if kind is float and (isinstance(v, bool) or not isinstance(v, (int, float))):
    raise CheckpointError(f"{where}: {key} must be a number, got {v!r}.")
  if kind is bool and not isinstance(v, bool):
    raise CheckpointError(f"{where}: {key} must be true or false, got {v!r}.")
  return v


def _act(cfg: dict, where: str, default: str) -> str:
  act = cfg.get("hidden_act", default)
  table = {"gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh"}
  if act not in table:
    raise CheckpointError(f"{where}: hidden_act {act!r} is not supported (gelu, "
                          "gelu_pytorch_tanh).")
  return table[act]


def _square(v, key: str, where: str) -> int:
  if isinstance(v, (list, tuple)):
    if len(v) != 2 or v[0] != v[1]:
      raise CheckpointError(f"{where}: {key} {v!r}: only square sizes are supported.")
    v = v[0]
  if isinstance(v, bool) or not isinstance(v, int) or v < 1:
    raise CheckpointError(f"{where}: {key} must be a positive integer, got {v!r}.")
  return v


def vision_config(cfg: dict, where: str, *, pool: Optional[str] = None
                  ) -> vit.ViTConfig:
  """The ViTConfig of a DINOv2 config.json or of a SigLIP vision_config."""
  mt = cfg.get("model_type")
  if mt in ("dinov2", "dinov2_with_registers"):
    d = _get(cfg, "hidden_size", where)
    ratio = _get(cfg, "mlp_ratio", where, 4, float)
    mlp = int(d * ratio)
    swiglu = _get(cfg, "use_swiglu_ffn", where, False, bool)
    if swiglu:
      mlp = (int(mlp * 2 / 3) + 7) // 8 * 8
    if cfg.get("layerscale_value") is None:
      raise CheckpointError(f"{where}: layerscale_value is missing.")
    regs = _get(cfg, "num_register_tokens", where, 0) if mt == "dinov2_with_registers" \
        else 0
    pool = pool or "cls"
    if pool not in ("cls", "cls_mean"):
      raise CheckpointError(f"--pool {pool!r}: DINOv2's features are 'cls' (the "
                            "class token) or 'cls_mean' (class token and mean of "
                            "the patch tokens).")
    return vit.ViTConfig(
        hidden=d, layers=_get(cfg, "num_hidden_layers", where),
        heads=_get(cfg, "num_attention_heads", where), mlp=mlp,
        patch=_square(cfg.get("patch_size"), "patch_size", where),
        image_size=_square(cfg.get("image_size"), "image_size", where),
        channels=_get(cfg, "num_channels", where, 3), class_token=True,
        registers=regs, layerscale=True,
        mlp_kind="swiglu" if swiglu else _act(cfg, where, "gelu"),
        eps=float(_get(cfg, "layer_norm_eps", where, 1e-6, float)),
        qkv_bias=_get(cfg, "qkv_bias", where, True, bool), pool=pool,
        interpolation="bicubic_antialias" if mt == "dinov2_with_registers"
        else "bicubic")
  if pool not in (None, "map"):
    raise CheckpointError(f"--pool {pool!r}: SigLIP's features are its MAP head's "
                          "pooled embedding ('map').")
  if not cfg.get("vision_use_head", True):
    raise CheckpointError(f"{where}: vision_use_head is false: this tower has no "
                          "MAP head, so no pooled embedding.")
  return vit.ViTConfig(
      hidden=_get(cfg, "hidden_size", where, 768),
      layers=_get(cfg, "num_hidden_layers", where, 12),
      heads=_get(cfg, "num_attention_heads", where, 12),
      mlp=_get(cfg, "intermediate_size", where, 3072),
      patch=_square(cfg.get("patch_size", 16), "patch_size", where),
      image_size=_square(cfg.get("image_size", 224), "image_size", where),
      channels=_get(cfg, "num_channels", where, 3), class_token=False,
      layerscale=False, mlp_kind=_act(cfg, where, "gelu_pytorch_tanh"),
      eps=float(_get(cfg, "layer_norm_eps", where, 1e-6, float)), pool="map")


def text_config(cfg: dict, where: str) -> vit.TextConfig:
  """The TextConfig of a SigLIP text_config."""
  hidden = _get(cfg, "hidden_size", where, 768)
  return vit.TextConfig(
      vocab=_get(cfg, "vocab_size", where, 32000),
      max_length=_get(cfg, "max_position_embeddings", where, 64),
      hidden=hidden, layers=_get(cfg, "num_hidden_layers", where, 12),
      heads=_get(cfg, "num_attention_heads", where, 12),
      mlp=_get(cfg, "intermediate_size", where, 3072),
      projection=_get(cfg, "projection_size", where, hidden),
      eps=float(_get(cfg, "layer_norm_eps", where, 1e-6, float)),
      mlp_kind=_act(cfg, where, "gelu_pytorch_tanh"))


def configs(arch: str, cfg: dict, where: str, *, pool: Optional[str] = None
            ) -> tuple[vit.ViTConfig, Optional[vit.TextConfig]]:
  """(vision config, text config or None) of a checkpoint's config.json,
  refusing another architecture by its model_type."""
  if arch not in ARCHS:
    raise CheckpointError(f"--arch must be one of {', '.join(ARCHS)} here, got "
                          f"{arch!r}.")
  mt = cfg.get("model_type")
  if mt == "siglip2":
    raise CheckpointError(f"{where}: model_type siglip2 is a NaFlex (variable "
                          "resolution) SigLIP 2 checkpoint, which jaxal does not "
                          "support; use a fixed-resolution one (model_type "
                          "siglip, e.g. siglip2-base-patch16-224).")
  if mt not in _MODEL_TYPES[arch]:
    other = next((a for a, ts in _MODEL_TYPES.items() if mt in ts), None)
    raise CheckpointError(
        f"{where}: model_type {mt!r} is not {arch}'s ("
        f"{', '.join(_MODEL_TYPES[arch])})"
        + (f"; pass --arch={other}" if other else "") + ".")
  if arch == "dinov2":
    return vision_config(cfg, where, pool=pool), None
  for part in ("vision_config", "text_config"):
    if not isinstance(cfg.get(part), dict):
      raise CheckpointError(f"{where}: {part} is missing (a SiglipModel config "
                            "holds both towers).")
  return (vision_config(cfg["vision_config"], f"{where} vision_config", pool=pool),
          text_config(cfg["text_config"], f"{where} text_config"))


# ------------------------------------------------------------------- keys
_RENAMES = (  # transformers 5's names -> the hub's, so both layouts read alike
    (".attention.q_proj.", ".attention.attention.query."),
    (".attention.k_proj.", ".attention.attention.key."),
    (".attention.v_proj.", ".attention.attention.value."),
    (".attention.o_proj.", ".attention.output.dense."),
    (".mlp.down_proj.", ".mlp.weights_out."),
)


def _normalize_keys(sd: dict, arch: str) -> dict:
  """The hub's key layout: transformers 5's renamed keys mapped back (the
  SwiGLU gate/up pair joined into weights_in), a model prefix dropped."""
  out = {}
  for k, v in sd.items():
    if arch == "dinov2":
      for prefix in ("dinov2.", "dinov2_with_registers."):
        if k.startswith(prefix):
          k = k[len(prefix):]
      for new, old in _RENAMES:
        k = k.replace(new, old)
    out[k] = v
  if arch == "dinov2":
    for k in [k for k in out if ".mlp.gate_proj." in k]:
      up = k.replace(".mlp.gate_proj.", ".mlp.up_proj.")
      if up in out:
        out[k.replace(".mlp.gate_proj.", ".mlp.weights_in.")] = np.concatenate(
            [out.pop(k), out.pop(up)], axis=0)
  return out


def _linear(prefix: str, path: tuple, heads: int = 0, kind: str = "dense",
            bias: bool = True):
  """[(hub key, Flax path, converter)] of one Linear."""
  if kind == "qkv":  # [H*hd, D] -> [D, H, hd]
    return [(prefix + ".weight", path + ("kernel",),
             lambda w: w.T.reshape(w.shape[1], heads, -1))] + (
                 [(prefix + ".bias", path + ("bias",), lambda b: b.reshape(heads, -1))]
                 if bias else [])
  if kind == "out":  # [D, H*hd] -> [H, hd, D]
    return [(prefix + ".weight", path + ("kernel",),
             lambda w: w.T.reshape(heads, -1, w.shape[0])),
            (prefix + ".bias", path + ("bias",), lambda b: b)]
  return [(prefix + ".weight", path + ("kernel",), lambda w: w.T),
          (prefix + ".bias", path + ("bias",), lambda b: b)]


def _norm(prefix: str, path: tuple):
  return [(prefix + ".weight", path + ("scale",), lambda w: w),
          (prefix + ".bias", path + ("bias",), lambda b: b)]


def _dinov2_layout(c: vit.ViTConfig) -> list:
  h = c.heads
  rows = [("embeddings.cls_token", ("cls",), lambda a: a.reshape(1, -1)),
          ("embeddings.position_embeddings", ("pos_embed",), lambda a: a[0]),
          ("embeddings.patch_embeddings.projection.weight", ("patch_embed", "kernel"),
           lambda w: w.transpose(2, 3, 1, 0)),
          ("embeddings.patch_embeddings.projection.bias", ("patch_embed", "bias"),
           lambda b: b)]
  if c.registers:
    rows.append(("embeddings.register_tokens", ("reg",), lambda a: a[0]))
  for i in range(c.layers):
    p, b = f"encoder.layer.{i}", (f"block{i}",)
    rows += _norm(f"{p}.norm1", b + ("norm1",))
    for name, flax in (("query", "query"), ("key", "key"), ("value", "value")):
      rows += _linear(f"{p}.attention.attention.{name}", b + ("attn", flax), h, "qkv",
                      bias=c.qkv_bias)
    rows += _linear(f"{p}.attention.output.dense", b + ("attn", "out"), h, "out")
    rows.append((f"{p}.layer_scale1.lambda1", b + ("ls1", "scale"), lambda a: a))
    rows += _norm(f"{p}.norm2", b + ("norm2",))
    if c.mlp_kind == "swiglu":
      m = c.mlp
      rows += [(f"{p}.mlp.weights_in.weight", b + ("mlp", "gate", "kernel"),
                lambda w, m=m: w[:m].T),
               (f"{p}.mlp.weights_in.weight", b + ("mlp", "up", "kernel"),
                lambda w, m=m: w[m:].T),
               (f"{p}.mlp.weights_in.bias", b + ("mlp", "gate", "bias"),
                lambda a, m=m: a[:m]),
               (f"{p}.mlp.weights_in.bias", b + ("mlp", "up", "bias"),
                lambda a, m=m: a[m:])]
      rows += _linear(f"{p}.mlp.weights_out", b + ("mlp", "down"))
    else:
      rows += _linear(f"{p}.mlp.fc1", b + ("mlp", "fc1"))
      rows += _linear(f"{p}.mlp.fc2", b + ("mlp", "fc2"))
    rows.append((f"{p}.layer_scale2.lambda1", b + ("ls2", "scale"), lambda a: a))
  rows += _norm("layernorm", ("norm",))
  return rows


def _siglip_block(p: str, b: tuple, heads: int) -> list:
  rows = _norm(f"{p}.layer_norm1", b + ("norm1",))
  for name, flax in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value")):
    rows += _linear(f"{p}.self_attn.{name}", b + ("attn", flax), heads, "qkv")
  rows += _linear(f"{p}.self_attn.out_proj", b + ("attn", "out"), heads, "out")
  rows += _norm(f"{p}.layer_norm2", b + ("norm2",))
  rows += _linear(f"{p}.mlp.fc1", b + ("mlp", "fc1"))
  rows += _linear(f"{p}.mlp.fc2", b + ("mlp", "fc2"))
  return rows


def _siglip_layout(c: vit.ViTConfig, t: vit.TextConfig) -> list:
  v, h = "vision_model", c.heads
  d = c.hidden
  rows = [(f"{v}.embeddings.patch_embedding.weight", ("vision", "patch_embed", "kernel"),
           lambda w: w.transpose(2, 3, 1, 0)),
          (f"{v}.embeddings.patch_embedding.bias", ("vision", "patch_embed", "bias"),
           lambda b: b),
          (f"{v}.embeddings.position_embedding.weight", ("vision", "pos_embed"),
           lambda a: a)]
  for i in range(c.layers):
    rows += _siglip_block(f"{v}.encoder.layers.{i}", ("vision", f"block{i}"), h)
  rows += _norm(f"{v}.post_layernorm", ("vision", "norm"))
  head = ("vision", "head")
  rows.append((f"{v}.head.probe", head + ("probe",), lambda a: a))
  for k, name in enumerate(("query", "key", "value")):
    rows += [(f"{v}.head.attention.in_proj_weight", head + ("attn", name, "kernel"),
              lambda w, k=k: w[k * d:(k + 1) * d].T.reshape(d, h, -1)),
             (f"{v}.head.attention.in_proj_bias", head + ("attn", name, "bias"),
              lambda b, k=k: b[k * d:(k + 1) * d].reshape(h, -1))]
  rows += _linear(f"{v}.head.attention.out_proj", head + ("attn", "out"), h, "out")
  rows += _norm(f"{v}.head.layernorm", head + ("norm",))
  rows += _linear(f"{v}.head.mlp.fc1", head + ("mlp", "fc1"))
  rows += _linear(f"{v}.head.mlp.fc2", head + ("mlp", "fc2"))
  x = "text_model"
  rows += [(f"{x}.embeddings.token_embedding.weight", ("text", "tok_embed", "embedding"),
            lambda a: a),
           (f"{x}.embeddings.position_embedding.weight", ("text", "pos_embed"),
            lambda a: a)]
  for i in range(t.layers):
    rows += _siglip_block(f"{x}.encoder.layers.{i}", ("text", f"block{i}"), t.heads)
  rows += _norm(f"{x}.final_layer_norm", ("text", "norm"))
  rows += _linear(f"{x}.head", ("text", "head"))
  rows += [("logit_scale", ("logit_scale",), lambda a: a.reshape(())),
           ("logit_bias", ("logit_bias",), lambda a: a.reshape(()))]
  return rows


@functools.lru_cache(maxsize=8)
def _shapes(vision: vit.ViTConfig, text: Optional[vit.TextConfig]) -> dict:
  """ShapeDtypeStructs of the towers' parameters (traced once per config)."""
  size = vision.image_size
  key = jax.random.PRNGKey(0)
  vm = vit.VisionTransformer(vision)
  out = {"vision": jax.eval_shape(lambda: vm.init(key, jax.numpy.zeros(
      (1, size, size, vision.channels))))["params"]}
  if text is not None:
    tm = vit.TextTransformer(text)
    out["text"] = jax.eval_shape(lambda: tm.init(key, jax.numpy.zeros(
        (1, text.max_length), jax.numpy.int32)))["params"]
  return out


def templates(vision: vit.ViTConfig, text: Optional[vit.TextConfig]) -> dict:
  """Zero variables of the towers (their shapes): {"vision": params,
  "text": params, "logit_scale": (), "logit_bias": ()} (the last three for
  SigLIP only)."""
  out = jax.tree_util.tree_map(lambda sd: np.zeros(sd.shape, sd.dtype),
                               _shapes(vision, text))
  if text is not None:
    out["logit_scale"] = np.zeros((), np.float32)
    out["logit_bias"] = np.zeros((), np.float32)
  return out


def _set(tree: dict, path: tuple, value) -> None:
  for p in path[:-1]:
    tree = tree[p]
  tree[path[-1]] = value


def _get_path(tree: dict, path: tuple):
  for p in path:
    tree = tree[p]
  return tree


def convert(arch: str, cfg: dict, state_dict: dict, *, where: str = "--weights",
            pool: Optional[str] = None) -> tuple[vit.ViTConfig,
                                                 Optional[vit.TextConfig], dict]:
  """(vision config, text config or None, variables) of a checkpoint's
  config.json and tensors (`templates`' structure, float32 numpy).

  Raises CheckpointError naming the first unexpected, missing or mis-shaped
  key, or a non-finite value.
  """
  vision, text = configs(arch, cfg, where, pool=pool)
  sd = _normalize_keys(state_dict, arch)
  if arch == "dinov2":
    layout, tree = _dinov2_layout(vision), {"vision": templates(vision, None)["vision"]}
    layout = [(k, ("vision",) + p, f) for k, p, f in layout]
  else:
    layout, tree = _siglip_layout(vision, text), templates(vision, text)
  wanted = {k for k, _, _ in layout}
  dropped = {k for k in sd if k in _DROPPED or k.endswith("." + _DROPPED[1])
             or k == _DROPPED[1]}
  extra = sorted(set(sd) - wanted - dropped)
  missing = sorted(wanted - set(sd))
  model = {"dinov2": "Dinov2Model / Dinov2WithRegistersModel",
           "siglip": "SiglipModel"}[arch]
  if extra:
    raise CheckpointError(f"{where}: key {extra[0]!r} is not a weight of {model} "
                          f"as config.json describes it ({len(extra)} such key(s)).")
  if missing:
    raise CheckpointError(f"{where}: key {missing[0]!r} is missing ({len(missing)} "
                          f"such key(s)); config.json describes a {model} with it.")
  for key, path, fn in layout:
    a = np.asarray(sd[key])
    if not np.issubdtype(a.dtype, np.floating):
      raise CheckpointError(f"{where}: key {key!r} holds {a.dtype}, not floats.")
    want = _get_path(tree, path).shape
    try:
      b = np.asarray(fn(a.astype(np.float32)), np.float32)
    except ValueError:
      b = None
    if b is None or b.shape != tuple(want):
      raise CheckpointError(f"{where}: key {key!r} has shape {tuple(a.shape)}, "
                            f"which does not fit config.json's sizes (Flax "
                            f"{tuple(want)}).")
    if not np.isfinite(b).all():
      raise CheckpointError(f"{where}: key {key!r} holds non-finite values.")
    _set(tree, path, np.ascontiguousarray(b))
  return vision, text, tree
