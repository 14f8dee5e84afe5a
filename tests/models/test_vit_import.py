"""`jaxal import-source --arch=dinov2|siglip`: what it refuses, with nothing
written (a config of another architecture, a NaFlex SigLIP 2, a missing or
extra key, a wrong shape, a truncated or malformed safetensors file, a missing
preprocessor config), both key layouts and bfloat16 weights read alike, and
the source work directory it writes read back by `source.load_workdir`."""

import json
import os
import struct
import sys

import numpy as np
import pytest

from jaxal.models import foundation, hf_vit, source
from tests.conftest import ROOT  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "tests", "data"))
import vit_fixture as fx  # noqa: E402  pylint: disable=g-import-not-at-top

with open(os.path.join(ROOT, "tests", "data", "vit", "layout.json")) as _f:
  LAYOUT = json.load(_f)


def checkpoint(tmp_path, name="dinov2_tiny", edit=None, config=None):
  """A fixture checkpoint folder; `edit(state_dict)` changes its tensors and
  `config(dict)` its config.json before they are written."""
  folder = str(tmp_path / f"ckpt_{name}")
  sd = fx.write_checkpoint(name, folder, LAYOUT[name]["keys"])
  if edit is not None:
    from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
    edit(sd)
    save_file(sd, os.path.join(folder, "model.safetensors"))
  if config is not None:
    path = os.path.join(folder, "config.json")
    with open(path) as f:
      cfg = json.load(f)
    config(cfg)
    with open(path, "w") as f:
      json.dump(cfg, f)
  return folder


def refused(tmp_path, folder, match, arch="dinov2"):
  out = str(tmp_path / "src")
  with pytest.raises(hf_vit.CheckpointError, match=match):
    foundation.import_source(arch, folder, out)
  assert not os.path.exists(out)
  assert not [p for p in os.listdir(tmp_path) if ".importing-" in p]


def test_refusals_name_the_key_or_file_and_write_nothing(tmp_path):
  ok = checkpoint(tmp_path)
  refused(tmp_path, ok, r"model_type 'dinov2' is not siglip's.*--arch=dinov2",
          arch="siglip")

  def extra(sd):
    sd["encoder.layer.9.norm1.weight"] = np.ones(32, np.float32)
  refused(tmp_path, checkpoint(tmp_path / "a", edit=extra),
          r"key 'encoder.layer.9.norm1.weight' is not a weight")

  def missing(sd):
    del sd["encoder.layer.1.layer_scale2.lambda1"]
  refused(tmp_path, checkpoint(tmp_path / "b", edit=missing),
          r"key 'encoder.layer.1.layer_scale2.lambda1' is missing")

  def wrong(sd):
    sd["encoder.layer.0.mlp.fc1.weight"] = np.ones((100, 32), np.float32)
  refused(tmp_path, checkpoint(tmp_path / "c", edit=wrong),
          r"key 'encoder.layer.0.mlp.fc1.weight' has shape \(100, 32\)")

  def nan(sd):
    sd["layernorm.bias"][3] = np.nan
  refused(tmp_path, checkpoint(tmp_path / "d", edit=nan), r"non-finite")

  truncated = checkpoint(tmp_path / "e")
  path = os.path.join(truncated, "model.safetensors")
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 100)
  refused(tmp_path, truncated, r"model.safetensors: truncated")

  garbage = checkpoint(tmp_path / "f")
  with open(os.path.join(garbage, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", 10 ** 12) + b"{}")
  refused(tmp_path, garbage, r"not a safetensors file")

  naflex = checkpoint(tmp_path / "g", config=lambda c: c.update(model_type="siglip2"))
  refused(tmp_path, naflex, r"NaFlex")

  no_prep = checkpoint(tmp_path / "h")
  os.remove(os.path.join(no_prep, "preprocessor_config.json"))
  refused(tmp_path, no_prep, r"no preprocessor_config.json")

  no_weights = checkpoint(tmp_path / "i")
  os.remove(os.path.join(no_weights, "model.safetensors"))
  refused(tmp_path, no_weights, r"no model.safetensors")

  refused(tmp_path, os.path.join(ok, "config.json"), r"is not a folder")


def test_transformers5_names_and_bfloat16_read_as_the_hub_layout(tmp_path):
  name = "dinov2_swiglu_reg"
  hub = checkpoint(tmp_path, name)
  cfg = hf_vit.read_config(hub)
  _, _, want = hf_vit.convert("dinov2", cfg, hf_vit.read_weights(hub))

  def renamed(sd):  # what transformers 5's modules call them
    for k in list(sd):
      v = sd.pop(k)
      if ".mlp.weights_in." in k:
        half = v.shape[0] // 2
        sd[k.replace("weights_in", "gate_proj")] = np.ascontiguousarray(v[:half])
        sd[k.replace("weights_in", "up_proj")] = np.ascontiguousarray(v[half:])
        continue
      for old, new in ((".attention.attention.query.", ".attention.q_proj."),
                       (".attention.attention.key.", ".attention.k_proj."),
                       (".attention.attention.value.", ".attention.v_proj."),
                       (".attention.output.dense.", ".attention.o_proj."),
                       (".mlp.weights_out.", ".mlp.down_proj.")):
        k = k.replace(old, new)
      sd["dinov2_with_registers." + k] = v
  new = checkpoint(tmp_path / "new", name, edit=renamed)
  _, _, got = hf_vit.convert("dinov2", cfg, hf_vit.read_weights(new))
  for a, b in zip(_leaves(want), _leaves(got)):
    np.testing.assert_array_equal(a, b)

  # bfloat16 tensors: read exactly (the float32 values bfloat16 holds)
  sd = fx.state_dict(name, LAYOUT[name]["keys"])
  bits = {k: (v.view(np.uint32) >> 16).astype(np.uint16) for k, v in sd.items()}
  folder = str(tmp_path / "bf16")
  fx.write_checkpoint(name, folder, LAYOUT[name]["keys"])
  _write_bf16(os.path.join(folder, "model.safetensors"), bits)
  got = hf_vit.read_weights(folder)
  for k, v in sd.items():
    np.testing.assert_array_equal(got[k], (bits[k].astype(np.uint32) << 16)
                                  .view(np.float32).reshape(v.shape))


def _leaves(tree):
  import jax  # pylint: disable=g-import-not-at-top
  return jax.tree_util.tree_leaves(tree)


def _write_bf16(path, arrays):
  header, offset, blobs = {}, 0, []
  for k in sorted(arrays):
    raw = np.ascontiguousarray(arrays[k]).tobytes()
    header[k] = {"dtype": "BF16", "shape": list(arrays[k].shape),
                 "data_offsets": [offset, offset + len(raw)]}
    offset += len(raw)
    blobs.append(raw)
  text = json.dumps(header).encode()
  text += b" " * (-len(text) % 8)
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_the_source_reads_back_as_an_encoder(tmp_path):
  folder = checkpoint(tmp_path)
  out = str(tmp_path / "src")
  cfg = foundation.import_source("dinov2", folder, out, pool="cls_mean")
  assert cfg["kind"] == "foundation" and cfg["features"] == "cls_mean"
  trained = source.load_workdir(out)
  assert trained.imported and trained.foundation and trained.features_only
  x = np.zeros((2, 28, 28, 3), np.float32)
  logits, feats = trained.model.apply(trained.final, x)
  assert logits.shape == (2, 0) and feats.shape == (2, 64)
  with pytest.raises(ValueError, match="no text tower"):
    foundation.load_text(out)


def test_bfloat16_compute_stays_near_float32(tmp_path):
  """`compute_dtype=bfloat16` (parameters, LayerNorm and softmax in float32):
  the features' cosine similarity to float32's above 0.99 on the 768-wide
  DINOv2 block (bfloat16 keeps 8 bits of mantissa)."""
  folder = checkpoint(tmp_path, "dinov2_base_1layer")
  feats = {}
  for dtype in ("float32", "bfloat16"):
    out = str(tmp_path / dtype)
    foundation.import_source("dinov2", folder, out, compute_dtype=dtype)
    trained = source.load_workdir(out)
    x = np.random.default_rng(0).normal(size=(4, 224, 224, 3)).astype(np.float32)
    _, f = trained.model.apply(trained.final, x)
    feats[dtype] = np.asarray(f, np.float64)
  a, b = feats["float32"], feats["bfloat16"]
  cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
  assert cos.min() > 0.99, cos
  assert np.abs(a - b).max() > 0  # it did compute in another precision


def test_a_sharded_checkpoint_reads_as_one_file(tmp_path):
  """model.safetensors.index.json and its shards, as large checkpoints come."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  whole = checkpoint(tmp_path)
  sd = hf_vit.read_weights(whole)
  shards = str(tmp_path / "shards")
  fx.write_checkpoint("dinov2_tiny", shards, LAYOUT["dinov2_tiny"]["keys"])
  os.remove(os.path.join(shards, "model.safetensors"))
  keys = sorted(sd)
  parts = {"model-00001-of-00002.safetensors": keys[::2],
           "model-00002-of-00002.safetensors": keys[1::2]}
  for name, ks in parts.items():
    save_file({k: np.ascontiguousarray(sd[k]) for k in ks}, os.path.join(shards, name))
  with open(os.path.join(shards, "model.safetensors.index.json"), "w") as f:
    json.dump({"weight_map": {k: n for n, ks in parts.items() for k in ks}}, f)
  got = hf_vit.read_weights(shards)
  assert sorted(got) == keys
  for k in keys:
    np.testing.assert_array_equal(got[k], sd[k])
  assert hf_vit.weight_files(shards) == ["model.safetensors.index.json", *sorted(parts)]
  os.remove(os.path.join(shards, "model-00002-of-00002.safetensors"))
  refused(tmp_path, shards, r"lists model-00002-of-00002.safetensors, which is missing")
