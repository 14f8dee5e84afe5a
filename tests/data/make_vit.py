"""Writes tests/data/vit/: transformers' DINOv2 and SigLIP outputs for seeded weights.

    .venv/bin/python tests/data/make_vit.py [OUT_DIR]   (needs torch, transformers)

For each configuration of `vit_fixture.CONFIGS` it:

1. takes the key layout (names, shapes) from transformers' own
   `save_pretrained` of the model built from the config (`torch.manual_seed(0)`).
   That is the public layout, the one of the hub's checkpoints: the script
   checks that DINOv2's keys are the legacy ones (`attention.attention.query`,
   `mlp.weights_in`, ...), not the module names of transformers 5.23;
2. writes the checkpoint folder with `vit_fixture.write_checkpoint` and loads it
   with `AutoModel.from_pretrained(folder, attn_implementation="eager",
   dtype=float32, output_loading_info=True)`: no missing, unexpected or
   mismatched key, every loaded tensor equal to the fixture's array after the
   documented renaming (`LOADED_AS`; the fused SwiGLU `weights_in` splits in two
   along rows: gate, then up), and `save_pretrained` of the loaded model writes
   the fixture's arrays back bit for bit;
3. runs the model in eval mode, float32, on CPU, on the inputs of `CASES`
   (`vit_fixture.pixel_values`: plain crops normalised by the config's
   preprocessor mean/std, no image processor; `vit_fixture.token_ids`), and
   records in outputs.npz, under `{config}/{case}/{output}`:
   - `hidden_states_{i}` (output_hidden_states=True): index 0 is the embeddings'
     output (DINOv2: CLS [+ registers] + patches + position embeddings, before
     any block; SigLIP: patches or tokens + position embeddings), index i the
     output of block i, before the final LayerNorm (DINOv2 `layernorm`, SigLIP
     `post_layernorm` / `final_layer_norm`): the last one is NOT
     last_hidden_state;
   - `last_hidden_state` (after the final LayerNorm) and `pooler_output`
     (DINOv2: the CLS row of last_hidden_state; SigLIP vision: the attention-
     pooling head's output; SigLIP text: `head` of the last position's row);
   - DINOv2 `cls_patch_mean`: what {Dinov2,Dinov2WithRegisters}ForImage-
     Classification feeds its classifier, [CLS, mean of the patch tokens] of
     last_hidden_state (registers excluded from the mean), recorded from that
     very class built with num_labels=0 (classifier = Identity);
   - for cases off the native size, `pos_embed`: the interpolated position
     embeddings that `embeddings.interpolate_pos_encoding` adds ([1, 1 +
     patches, D] for DINOv2, the CLS row untouched; [1, patches, D] for SigLIP);
   - SigLIP `{config}/text/...` (no attention mask, as SigLIP is used) and
     `{config}/text_masked/...` (with `vit_fixture.text_mask`), and per image
     case `image_embeds`, `text_embeds` (L2-normalised), `logits_per_image`
     [images, texts] and `logits_per_text` [texts, images]; for the native case
     also `logits_per_image_masked` (the text with its attention mask).
   For the 768-wide configurations (not in `FULL`) every [batch, tokens,
   channels] array is stored summarised: `/sample` (the C-order flattened array,
   every `STRIDE`-th value), `/token_mean` [batch, tokens], `/channel_mean`
   [batch, channels], `/token0` and `/token_last` (the first and last token's
   full rows); smaller arrays are stored whole.

layout.json holds, per configuration, the config.json and
preprocessor_config.json written, the keys and shapes, the weights' SHA-256
(sorted keys, raw bytes), how transformers renames them on load, the cases,
the inputs' shapes and SHA-256, the full shape of every recorded output, and the
largest error of the float32 run relative to a float64 run of the same model
(max |f32 - f64| / max |f64| over each array), as a floor for tolerances. The
checkpoint folders are not kept: the test rebuilds them with the fixture.

Nothing here is imported by the test: its outputs are.
"""

import copy
import datetime
import hashlib
import json
import os
import sys
import tempfile

import numpy as np
import safetensors
import torch
import transformers
from safetensors.numpy import load_file
from transformers import (AutoConfig, AutoImageProcessor, AutoModel,
                          AutoModelForImageClassification)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_fixture as fx  # noqa: E402

STRIDE = 41
# configurations stored whole; the others summarised (see the docstring)
FULL = ("dinov2_tiny", "dinov2_swiglu_reg", "siglip_tiny")
# name -> [(case, height, width, images)]; "native" is the config's image_size,
# the other cases interpolate the position embeddings (DINOv2 always does off
# its native grid; SigLIP is given interpolate_pos_encoding=True)
CASES = {
    "dinov2_tiny": [("native", 28, 28, 2), ("36x44", 36, 44, 2),
                    ("20x24", 20, 24, 1)],
    "dinov2_swiglu_reg": [("native", 32, 32, 2), ("24x40", 24, 40, 2)],
    # 224 is what facebook/dinov2-base's own processor crops: 16x16 patches,
    # the position embeddings shrink from 37x37
    "dinov2_base_1layer": [("native", 518, 518, 2), ("224x224", 224, 224, 2)],
    "siglip_tiny": [("native", 32, 32, 2), ("40x40", 40, 40, 2),
                    ("40x48", 40, 48, 2), ("24x24", 24, 24, 1)],
    "siglip2_base_1layer": [("native", 224, 224, 2)],
}
TEXT_ROWS = 3  # token_ids(name, TEXT_ROWS, max_position_embeddings)
# public (hub) name -> transformers 5.23 module name, per model type
LOADED_AS = {
    "dinov2": [("attention.attention.query.", "attention.q_proj."),
               ("attention.attention.key.", "attention.k_proj."),
               ("attention.attention.value.", "attention.v_proj."),
               ("attention.output.dense.", "attention.o_proj."),
               ("mlp.weights_out.", "mlp.down_proj."),
               ("mlp.weights_in.", "mlp.{gate_proj,up_proj}. (rows split in two)")],
    "siglip": [],
}
LOADED_AS["dinov2_with_registers"] = LOADED_AS["dinov2"]


def digest(arrays: dict) -> str:
  h = hashlib.sha256()
  for k in sorted(arrays):
    h.update(k.encode())
    h.update(np.ascontiguousarray(arrays[k]).tobytes())
  return h.hexdigest()


def sha(a: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def public_layout(name: str, tmp: str) -> dict:
  """{key: shape} that transformers' save_pretrained writes for `name`."""
  folder = os.path.join(tmp, name + "_layout")
  os.makedirs(folder)
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(fx.CONFIGS[name][1], f)
  torch.manual_seed(0)
  model = AutoModel.from_config(AutoConfig.from_pretrained(folder))
  model.save_pretrained(folder)
  with safetensors.safe_open(os.path.join(folder, "model.safetensors"), "np") as f:
    layout = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
  if fx.CONFIGS[name][0].startswith("dinov2"):
    assert any("attention.attention.query" in k for k in layout), layout
    assert not any("q_proj" in k or "gate_proj" in k for k in layout), layout
  return dict(sorted(layout.items()))


def as_loaded(model_type: str, sd: dict) -> dict:
  """The fixture's state dict under transformers 5.23's module names."""
  if not model_type.startswith("dinov2"):
    return dict(sd)
  out = {}
  for k, v in sd.items():
    if ".mlp.weights_in." in k:
      gate, up = np.split(v, 2, axis=0)
      out[k.replace("mlp.weights_in.", "mlp.gate_proj.")] = gate
      out[k.replace("mlp.weights_in.", "mlp.up_proj.")] = up
      continue
    for old, new in LOADED_AS["dinov2"][:5]:
      k = k.replace(old, new)
    out[k] = v
  return out


def load(cls, folder: str, **kw):
  model, info = cls.from_pretrained(
      folder, attn_implementation="eager", dtype=torch.float32,
      output_loading_info=True, **kw)
  bad = {k: v for k, v in info.items() if v}
  assert not bad, f"{folder}: {bad}"
  return model.eval()


def check_loaded(name: str, model, sd: dict, tmp: str) -> None:
  want = as_loaded(fx.CONFIGS[name][0], sd)
  got = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  assert set(got) == set(want), (set(got) ^ set(want))
  for k, v in want.items():
    assert got[k].dtype == v.dtype and np.array_equal(got[k], v), k
  back = os.path.join(tmp, name + "_resaved")
  model.save_pretrained(back)
  resaved = load_file(os.path.join(back, "model.safetensors"))
  assert set(resaved) == set(sd), set(resaved) ^ set(sd)
  for k, v in sd.items():
    assert np.array_equal(resaved[k], v), k


def summarise(arrays: dict, shapes: dict, key: str, a: np.ndarray, full: bool) -> None:
  shapes[key] = list(a.shape)
  if full or a.ndim != 3:
    arrays[key] = a
    return
  arrays[key + "/sample"] = a.reshape(-1)[::STRIDE].copy()
  arrays[key + "/token_mean"] = a.mean(-1)
  arrays[key + "/channel_mean"] = a.mean(-2)
  arrays[key + "/token0"] = a[:, 0].copy()
  arrays[key + "/token_last"] = a[:, -1].copy()


def run_dinov2(name, model, cls_model, pv, native):
  """{output: array} of one DINOv2 case; `model` may be float64."""
  x = torch.from_numpy(pv).to(model.dtype)
  out = model(pixel_values=x, output_hidden_states=True)
  res = {f"hidden_states_{i}": h for i, h in enumerate(out.hidden_states)}
  res["last_hidden_state"] = out.last_hidden_state
  res["pooler_output"] = out.pooler_output
  emb = model.embeddings
  assert torch.equal(out.hidden_states[0], emb(x))
  assert torch.equal(model.layernorm(out.hidden_states[-1]), out.last_hidden_state)
  assert torch.equal(out.pooler_output, out.last_hidden_state[:, 0])
  if cls_model is not None:
    feats = cls_model(pixel_values=x).logits
    regs = fx.CONFIGS[name][1].get("num_register_tokens", 0)
    seq = out.last_hidden_state
    assert torch.equal(feats, torch.cat([seq[:, 0], seq[:, 1 + regs:].mean(1)], 1))
    res["cls_patch_mean"] = feats
  if not native:
    p = emb.patch_embeddings.patch_size[0]
    n = (x.shape[2] // p) * (x.shape[3] // p)
    res["pos_embed"] = emb.interpolate_pos_encoding(
        torch.zeros(1, 1 + n, model.config.hidden_size, dtype=x.dtype),
        x.shape[2], x.shape[3])
  return {k: v.detach().numpy() for k, v in res.items()}


def run_siglip(name, model, pv, native, ids, mask, text):
  """{output: array} of one SigLIP image case (and the text, if `text`)."""
  x = torch.from_numpy(pv).to(model.dtype)
  ids = torch.from_numpy(ids)
  mask = torch.from_numpy(mask)
  interp = not native
  v = model.vision_model(pixel_values=x, interpolate_pos_encoding=interp,
                         output_hidden_states=True)
  res = {f"hidden_states_{i}": h for i, h in enumerate(v.hidden_states)}
  res["last_hidden_state"] = v.last_hidden_state
  res["pooler_output"] = v.pooler_output
  vm = model.vision_model
  assert torch.equal(vm.post_layernorm(v.hidden_states[-1]), v.last_hidden_state)
  assert torch.equal(vm.head(v.last_hidden_state), v.pooler_output)
  out = model(input_ids=ids, pixel_values=x, interpolate_pos_encoding=interp)
  for k in ("image_embeds", "text_embeds", "logits_per_image", "logits_per_text"):
    res[k] = getattr(out, k)
  assert torch.allclose(out.image_embeds, torch.nn.functional.normalize(
      v.pooler_output, dim=-1), atol=1e-6)
  if native:
    res["logits_per_image_masked"] = model(
        input_ids=ids, pixel_values=x, attention_mask=mask).logits_per_image
  else:
    p = model.config.vision_config.patch_size
    n = (x.shape[2] // p) * (x.shape[3] // p)
    res["pos_embed"] = vm.embeddings.interpolate_pos_encoding(
        torch.zeros(1, n, model.config.vision_config.hidden_size, dtype=x.dtype),
        x.shape[2], x.shape[3])
  res = {k: t.detach().numpy() for k, t in res.items()}
  if text:
    tm = model.text_model
    for prefix, m in (("text", None), ("text_masked", mask)):
      t = tm(input_ids=ids, attention_mask=m, output_hidden_states=True)
      assert torch.equal(tm.final_layer_norm(t.hidden_states[-1]), t.last_hidden_state)
      assert torch.equal(tm.head(t.last_hidden_state[:, -1]), t.pooler_output)
      for i, h in enumerate(t.hidden_states):
        res[f"{prefix}/hidden_states_{i}"] = h.detach().numpy()
      res[f"{prefix}/last_hidden_state"] = t.last_hidden_state.detach().numpy()
      res[f"{prefix}/pooler_output"] = t.pooler_output.detach().numpy()
  return res


def rel_err(a32: np.ndarray, a64: np.ndarray) -> float:
  return float(np.abs(a32.astype(np.float64) - a64).max() / max(np.abs(a64).max(), 1e-30))


def make(name: str, tmp: str, arrays: dict) -> dict:
  model_type, config = fx.CONFIGS[name]
  layout = public_layout(name, tmp)
  folder = os.path.join(tmp, name)
  sd = fx.write_checkpoint(name, folder, layout)
  model = load(AutoModel, folder)
  check_loaded(name, model, sd, tmp)
  # the preprocessor_config.json is one transformers reads (not used below)
  processor = AutoImageProcessor.from_pretrained(folder)
  processor(images=fx.crops(40, 50, 1)[0], return_tensors="np")
  model64 = copy.deepcopy(model).double()
  dinov2 = model_type.startswith("dinov2")
  cls_model = load(AutoModelForImageClassification, folder, num_labels=0) if dinov2 else None
  entry = {"model_type": model_type, "class": type(model).__name__,
           "processor_class": type(processor).__name__,
           "config": config, "preprocessor": fx.PREPROCESSORS[name],
           "keys": layout, "sha256": digest(sd),
           "loaded_as": LOADED_AS[model_type],
           "cases": [{"case": c, "height": h, "width": w, "images": n,
                      "interpolate_pos_encoding": c != "native"}
                     for c, h, w, n in CASES[name]],
           "inputs": {}, "outputs": {}}
  ids = mask = None
  if not dinov2:
    length = config["text_config"]["max_position_embeddings"]
    ids = fx.token_ids(name, TEXT_ROWS, length)
    mask = fx.text_mask(name, TEXT_ROWS, length)
    entry["inputs"]["input_ids"] = {"shape": list(ids.shape), "sha256": sha(ids),
                                    "call": f"token_ids({name!r}, {TEXT_ROWS}, {length})"}
    entry["inputs"]["attention_mask"] = {
        "shape": list(mask.shape), "sha256": sha(mask),
        "call": f"text_mask({name!r}, {TEXT_ROWS}, {length})"}
  worst = 0.0
  for j, (case, h, w, n) in enumerate(CASES[name]):
    pv = fx.pixel_values(name, h, w, n)
    entry["inputs"][f"{case}/pixel_values"] = {
        "shape": list(pv.shape), "sha256": sha(pv),
        "call": f"pixel_values({name!r}, {h}, {w}, {n})"}
    with torch.no_grad():
      if dinov2:
        r32 = run_dinov2(name, model, cls_model, pv, case == "native")
        r64 = run_dinov2(name, model64, None, pv, case == "native")
      else:
        r32 = run_siglip(name, model, pv, case == "native", ids, mask, j == 0)
        r64 = run_siglip(name, model64, pv, case == "native", ids, mask, j == 0)
    for k, a in r32.items():
      worst = max(worst, rel_err(a, r64[k])) if k in r64 else worst
      text = k.split("/")[0] in ("text", "text_masked")
      key = f"{name}/{k}" if text else f"{name}/{case}/{k}"
      summarise(arrays, entry["outputs"], key, a.astype(np.float32), name in FULL)
  entry["float32_vs_float64_max_rel_err"] = worst
  print(f"{name}: {len(layout)} keys, float32 vs float64 {worst:.2e}", flush=True)
  return entry


def main(out: str) -> None:
  torch.set_num_threads(2)
  os.makedirs(out, exist_ok=True)
  layout, arrays = {}, {}
  with tempfile.TemporaryDirectory() as tmp:
    for name in fx.CONFIGS:
      layout[name] = make(name, tmp, arrays)
  path = os.path.join(out, "outputs.npz")
  np.savez_compressed(path, **arrays)
  layout["made_with"] = {
      "transformers": transformers.__version__, "torch": torch.__version__,
      "numpy": np.__version__, "safetensors": safetensors.__version__,
      "python": sys.version.split()[0], "date": datetime.date.today().isoformat(),
      "device": "cpu", "attn_implementation": "eager", "dtype": "float32",
      "stride": STRIDE, "full": list(FULL)}
  with open(os.path.join(out, "layout.json"), "w") as f:
    json.dump(layout, f, indent=1, sort_keys=True)
    f.write("\n")
  print(f"wrote {out}: {len(arrays)} arrays, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else
       os.path.join(os.path.dirname(os.path.abspath(__file__)), "vit"))
