"""Seeded DINOv2 and SigLIP checkpoints in the hub's layout, from numpy alone.

What: five small configurations of Hugging Face transformers' `Dinov2Model`,
`Dinov2WithRegistersModel` and `SiglipModel` (`CONFIGS`), seeded random weights
for them (`weight`), the checkpoint folder a user downloads from the hub
(`write_checkpoint`: config.json, model.safetensors, preprocessor_config.json)
and the inputs the models see (`pixel_values`, `token_ids`, `text_mask`).
Nothing here imports torch: the test regenerates the very same folders and
inputs in CI and compares jaxal's outputs with the goldens.

How to regenerate the goldens (needs torch and transformers):

    .venv/bin/python tests/data/make_vit.py [OUT_DIR]    (default tests/data/vit)

`make_vit.py` takes each configuration's key layout from transformers' own
`save_pretrained` (tests/data/vit/layout.json, with the weights' and inputs'
SHA-256, so that a test can say when this module regenerates something else),
writes the folder with `write_checkpoint`, checks that `from_pretrained` loads it
with no missing, unexpected or mismatched key and with exactly these arrays, and
records transformers' outputs in tests/data/vit/outputs.npz.

The layout is the PUBLIC one, the one hub checkpoints and transformers 5.23's
`save_pretrained` write (transformers renames on load and back on save):
DINOv2's `attention.attention.{query,key,value}`, `attention.output.dense` and
the fused SwiGLU `mlp.weights_in` ([2 * hidden, D]: gate rows, then up rows) /
`mlp.weights_out`, where the 5.23 modules are `q_proj`/.../`o_proj` and
`gate_proj`/`up_proj`/`down_proj`. SigLIP's layout is the same in both.

What is compared: see make_vit.py's docstring.

The weights are drawn away from transformers' initialisation so that a swapped,
transposed or forgotten parameter changes the outputs: every LayerNorm scale
and LayerScale `lambda1` in [0.5, 1.5] (not 1), every bias ~ N(0, 0.2) (not 0),
linear and convolution kernels ~ N(0, 1 / fan_in) (activations stay O(1)),
position embeddings, CLS / mask / register tokens, SigLIP's probe and token
embeddings ~ N(0, 0.5), `logit_scale` = log(10) + N(0, 0.1) and `logit_bias`
~ N(-2, 0.5). Every array is drawn from its own key's seed, so the weights do
not depend on the order keys are listed in.
"""

import json
import os
import zlib

import numpy as np

SEED = 20261207

_DINOV2_PREPROCESS = {
    "do_resize": True, "resample": 3, "do_center_crop": True,
    "do_rescale": True, "rescale_factor": 0.00392156862745098,
    "do_normalize": True, "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225], "do_convert_rgb": True,
    "image_processor_type": "BitImageProcessor"}
_SIGLIP_PREPROCESS = {
    "do_resize": True, "do_rescale": True,
    "rescale_factor": 0.00392156862745098, "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    "image_processor_type": "SiglipImageProcessor"}

# name -> (model_type, config.json). Field names are those of transformers
# 5.23's Dinov2Config, Dinov2WithRegistersConfig, SiglipTextConfig,
# SiglipVisionConfig and SiglipConfig.
CONFIGS = {
    "dinov2_tiny": ("dinov2", {
        "architectures": ["Dinov2Model"], "model_type": "dinov2",
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "mlp_ratio": 4, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
        "layer_norm_eps": 1e-6, "image_size": 28, "patch_size": 4,  # 7x7 patches
        "num_channels": 3, "qkv_bias": True, "layerscale_value": 1.0,
        "drop_path_rate": 0.0, "use_swiglu_ffn": False}),
    "dinov2_swiglu_reg": ("dinov2_with_registers", {
        "architectures": ["Dinov2WithRegistersModel"],
        "model_type": "dinov2_with_registers",
        "hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "mlp_ratio": 4, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02,
        "layer_norm_eps": 1e-6, "image_size": 32, "patch_size": 4,  # 8x8 patches
        "num_channels": 3, "qkv_bias": True, "layerscale_value": 1.0,
        "drop_path_rate": 0.0, "use_swiglu_ffn": True,  # hidden 128 = 2/3 * 192
        "num_register_tokens": 4}),
    # facebook/dinov2-base's config.json, with 1 layer instead of 12.
    "dinov2_base_1layer": ("dinov2", {
        "architectures": ["Dinov2Model"], "model_type": "dinov2",
        "attention_probs_dropout_prob": 0.0, "drop_path_rate": 0.0,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "hidden_size": 768,
        "image_size": 518, "initializer_range": 0.02, "layer_norm_eps": 1e-6,
        "layerscale_value": 1.0, "mlp_ratio": 4, "num_attention_heads": 12,
        "num_channels": 3, "num_hidden_layers": 1, "patch_size": 14,
        "qkv_bias": True, "torch_dtype": "float32", "use_swiglu_ffn": False}),
    "siglip_tiny": ("siglip", {
        "architectures": ["SiglipModel"], "model_type": "siglip",
        "initializer_factor": 1.0,
        "text_config": {
            "model_type": "siglip_text_model", "vocab_size": 1000,
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "max_position_embeddings": 16,
            "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6,
            "attention_dropout": 0.0, "projection_size": 32,
            # SigLIP's T5 tokenizer: </s> is both padding and end of sequence
            "pad_token_id": 1, "eos_token_id": 1, "bos_token_id": None},
        "vision_config": {
            "model_type": "siglip_vision_model", "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_channels": 3, "image_size": 32,
            "patch_size": 4, "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6, "attention_dropout": 0.0,
            "vision_use_head": True}}),
    # google/siglip2-base-patch16-224 (a fixed-resolution SigLIP 2, hence a
    # SiglipModel) with 1 layer in each tower and vocab_size 4096 instead of
    # 256000: the real 256000 x 768 token embedding alone is 786 MB of float32.
    # The token ids are those of its Gemma tokenizer (they do not enter the
    # forward pass).
    "siglip2_base_1layer": ("siglip", {
        "architectures": ["SiglipModel"], "model_type": "siglip",
        "initializer_factor": 1.0,
        "text_config": {
            "model_type": "siglip_text_model", "vocab_size": 4096,
            "hidden_size": 768, "intermediate_size": 3072,
            "num_hidden_layers": 1, "num_attention_heads": 12,
            "max_position_embeddings": 64, "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6, "attention_dropout": 0.0,
            "projection_size": 768,
            "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2},
        "vision_config": {
            "model_type": "siglip_vision_model", "hidden_size": 768,
            "intermediate_size": 3072, "num_hidden_layers": 1,
            "num_attention_heads": 12, "num_channels": 3, "image_size": 224,
            "patch_size": 16, "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6, "attention_dropout": 0.0,
            "vision_use_head": True}}),
}

# name -> preprocessor_config.json
PREPROCESSORS = {
    "dinov2_tiny": dict(_DINOV2_PREPROCESS, size={"shortest_edge": 32},
                        crop_size={"height": 28, "width": 28}),
    "dinov2_swiglu_reg": dict(_DINOV2_PREPROCESS, size={"shortest_edge": 36},
                              crop_size={"height": 32, "width": 32}),
    # facebook/dinov2-base's: it crops 224, not the 518 of config.json
    "dinov2_base_1layer": dict(_DINOV2_PREPROCESS, size={"shortest_edge": 256},
                               crop_size={"height": 224, "width": 224}),
    # SiglipImageProcessor's default resample is 3 (bicubic)
    "siglip_tiny": dict(_SIGLIP_PREPROCESS, size={"height": 32, "width": 32},
                        resample=3),
    # the SigLIP 2 hub files ask for 2 (bilinear), as far as we know offline
    "siglip2_base_1layer": dict(_SIGLIP_PREPROCESS,
                                size={"height": 224, "width": 224}, resample=2),
}


def _rng(*parts) -> np.random.Generator:
  return np.random.default_rng([SEED, zlib.crc32(repr(parts).encode())])


def _normal(r, shape, std, mean=0.0) -> np.ndarray:
  return (mean + r.standard_normal(shape) * std).astype(np.float32)


def weight(name: str, key: str, shape) -> np.ndarray:
  """The seeded float32 array of `key` (public layout) of configuration `name`."""
  shape = tuple(int(s) for s in shape)
  r = _rng(name, key)
  leaf = key.rsplit(".", 1)[-1]
  if key == "logit_scale":
    return _normal(r, shape, 0.1, np.log(10.0))
  if key == "logit_bias":
    return _normal(r, shape, 0.5, -2.0)
  if leaf in ("cls_token", "mask_token", "register_tokens",
              "position_embeddings", "probe"):
    return _normal(r, shape, 0.5)
  if key.endswith(("token_embedding.weight", "position_embedding.weight")):
    return _normal(r, shape, 0.5)  # SigLIP's token and position tables
  if leaf == "lambda1":  # DINOv2's LayerScale
    return r.uniform(0.5, 1.5, shape).astype(np.float32)
  if leaf in ("bias", "in_proj_bias"):
    return _normal(r, shape, 0.2)
  if leaf == "weight" and len(shape) == 1:  # LayerNorm scales
    return r.uniform(0.5, 1.5, shape).astype(np.float32)
  if leaf in ("weight", "in_proj_weight") and len(shape) in (2, 4):
    fan_in = int(np.prod(shape[1:]))  # Linear [out, in], Conv2d [out, in, kh, kw]
    return _normal(r, shape, np.sqrt(1.0 / fan_in))
  raise ValueError(f"{name}: no rule for {key} {shape}")


def state_dict(name: str, layout: dict) -> dict:
  """{key: array} of `layout` ({key: shape} in the public layout)."""
  return {k: weight(name, k, s) for k, s in sorted(layout.items())}


def write_checkpoint(name: str, folder: str, layout: dict) -> dict:
  """Writes the hub-style checkpoint folder of configuration `name`: its
  config.json, model.safetensors (keys and shapes of `layout`) and
  preprocessor_config.json. Returns the state dict it wrote."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(CONFIGS[name][1], f, indent=2, sort_keys=True)
  with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
    json.dump(PREPROCESSORS[name], f, indent=2, sort_keys=True)
  sd = state_dict(name, layout)
  save_file(sd, os.path.join(folder, "model.safetensors"),
            metadata={"format": "pt"})
  return sd


def image(height: int, width: int) -> np.ndarray:
  """A seeded uint8 [height, width, 3] picture: smooth gradients, a few discs
  and noise (pretrained_fixture's recipe, with this module's seed)."""
  r = _rng("image", height, width)
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  out = np.stack([x / width * 255, y / height * 255,
                  (x + y) / (width + height) * 255], -1)
  for _ in range(4):
    cy, cx = r.uniform(0, height), r.uniform(0, width)
    rad = r.uniform(2, max(3, min(height, width) / 3))
    out[(y - cy) ** 2 + (x - cx) ** 2 < rad ** 2] = r.uniform(0, 255, 3)
  out += r.normal(0, 12, out.shape)
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def crops(height: int, width: int, count: int = 2) -> np.ndarray:
  """`count` uint8 [height, width, 3] pictures: plain (unresized) crops, at
  offsets (1 + i, 2 + 3 i), of the larger pictures image(height + 5 + 2 i,
  width + 9 + 3 i)."""
  out = []
  for i in range(count):
    pic = image(height + 5 + 2 * i, width + 9 + 3 * i)
    out.append(pic[1 + i:1 + i + height, 2 + 3 * i:2 + 3 * i + width])
  return np.stack(out)


def pixel_values(name: str, height: int, width: int, count: int = 2) -> np.ndarray:
  """The float32 NCHW input of configuration `name`: `crops(height, width,
  count)` rescaled by 1/255 and normalised by the mean and std of its
  preprocessor_config.json (computed in float64, rounded once)."""
  p = PREPROCESSORS[name]
  x = crops(height, width, count).astype(np.float64) / 255.0
  x = (x - np.asarray(p["image_mean"])) / np.asarray(p["image_std"])
  return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32)


def _text_lengths(batch: int, length: int) -> list:
  # tokens before the end of sequence: a full row, a padding-heavy one (3), then
  # rows of 9, 5, ...; the last position of a full row is the end of sequence
  return [length - 1, 3, 9, 5, 12][:batch] + [7] * max(0, batch - 5)


def token_ids(name: str, batch: int, length: int) -> np.ndarray:
  """Seeded int64 [batch, length] SigLIP input ids, padded to `length` the way
  SigLIP's processor does (`padding="max_length"`): each row is ids drawn from
  [3, vocab), the config's end-of-sequence id, then its pad id to the end. Row 0
  fills the row (end of sequence last), row 1 is padding-heavy (3 ids)."""
  text = CONFIGS[name][1]["text_config"]
  r = _rng("token_ids", name, batch, length)
  ids = np.full((batch, length), text["pad_token_id"], np.int64)
  for b, n in enumerate(_text_lengths(batch, length)):
    n = min(n, length - 1)
    ids[b, :n] = r.integers(3, text["vocab_size"], n)
    ids[b, n] = text["eos_token_id"]
  return ids


def text_mask(name: str, batch: int, length: int) -> np.ndarray:
  """The int64 [batch, length] attention mask of `token_ids`: 1 up to and with
  the end of sequence, 0 on the padding. (SigLIP was trained without one; the
  goldens hold outputs with and without.)"""
  del name
  mask = np.zeros((batch, length), np.int64)
  for b, n in enumerate(_text_lengths(batch, length)):
    mask[b, :min(n, length - 1) + 1] = 1
  return mask
