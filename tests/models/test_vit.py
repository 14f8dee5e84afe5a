"""jaxal's Flax ViTs against Hugging Face transformers' DINOv2, DINOv2 with
registers and SigLIP (tests/data/vit/, written by tests/data/make_vit.py with
transformers 5.23 on PyTorch): the checkpoint folders are regenerated here from
the seeded fixture without torch, imported by `jaxal.models.hf_vit`, and every
block's output, the final tokens, the pooled features, DINOv2's [class, mean
patch] features, the interpolated position embeddings at other image sizes,
SigLIP's text tower and `logits_per_image` are compared.

Tolerance: 2e-5 of each reference array's largest magnitude (5e-5 for the
768-wide configurations, whose sums run over 768 to 3072 terms). The goldens
are float32 runs whose own distance to a float64 run of the same weights is
at most 1.3e-6 of that scale (layout.json); a wrong GELU variant moves SigLIP's
pooled output by 1.5e-4 of it and a wrong interpolation kernel by 0.1 or more,
so these bounds catch them.
"""

import hashlib
import json
import os
import sys

import jax
import numpy as np
import pytest

from jaxal.models import hf_vit, vit
from tests.conftest import ROOT  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "tests", "data"))
import vit_fixture as fx  # noqa: E402  pylint: disable=g-import-not-at-top

DATA = os.path.join(ROOT, "tests", "data", "vit")
with open(os.path.join(DATA, "layout.json")) as _f:
  LAYOUT = json.load(_f)
GOLD = np.load(os.path.join(DATA, "outputs.npz"))
ARCH = {"dinov2": "dinov2", "dinov2_with_registers": "dinov2", "siglip": "siglip"}
NAMES = sorted(k for k in LAYOUT if k in fx.CONFIGS)


def _sha(a) -> str:
  return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _input(name: str, key: str) -> np.ndarray:
  spec = LAYOUT[name]["inputs"][key]
  a = eval(spec["call"], {n: getattr(fx, n) for n in dir(fx)})  # pylint: disable=eval-used
  assert _sha(a) == spec["sha256"], (
      f"{name} {key}: the fixture makes other inputs than the goldens saw; "
      "rerun tests/data/make_vit.py")
  return a


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  """{name: (vision config, text config, variables)} of every configuration,
  each through a checkpoint folder written as the hub holds it."""
  out = {}
  for name in NAMES:
    folder = str(tmp_path_factory.mktemp(name))
    fx.write_checkpoint(name, folder, LAYOUT[name]["keys"])
    cfg = hf_vit.read_config(folder)
    out[name] = hf_vit.convert(ARCH[cfg["model_type"]], cfg,
                               hf_vit.read_weights(folder), where=folder)
  return out


def close(name: str, key: str, got) -> None:
  """`got` against the golden `key` (or its summary, for the wide ones)."""
  got = np.asarray(got, np.float64)
  tol = 5e-5 if "base" in name else 2e-5
  if key in GOLD.files:
    want = GOLD[key]
    assert got.shape == want.shape, (key, got.shape, want.shape)
    parts = {"": (got, want)}
  else:
    parts = {s: (f(got), GOLD[key + "/" + s]) for s, f in (
        ("sample", lambda a: a.reshape(-1)[::41]), ("token_mean", lambda a: a.mean(-1)),
        ("channel_mean", lambda a: a.mean(-2)), ("token0", lambda a: a[:, 0]),
        ("token_last", lambda a: a[:, -1])) if key + "/" + s in GOLD.files}
    assert parts, f"no golden {key}"
  for s, (g, w) in parts.items():
    scale = float(np.abs(w).max())
    err = float(np.abs(g - w).max())
    assert err <= tol * scale, f"{key} {s}: max error {err:.3g}, scale {scale:.3g}"


def _cases(name):
  return [c["case"] for c in LAYOUT[name]["cases"]]


@pytest.mark.parametrize("name", [n for n in NAMES if ARCH[fx.CONFIGS[n][0]] == "dinov2"])
def test_dinov2_blocks_tokens_and_features_equal_transformers(imported, name):
  vcfg, _, tree = imported[name]
  for case in _cases(name):
    pv = _input(name, f"{case}/pixel_values")
    x = pv.transpose(0, 2, 3, 1)
    model = vit.VisionTransformer(vcfg)
    out = model.apply({"params": tree["vision"]}, x, method=model.encode)
    for i, h in enumerate(out["hidden_states"]):
      close(name, f"{name}/{case}/hidden_states_{i}", h)
    close(name, f"{name}/{case}/last_hidden_state", out["tokens"])
    close(name, f"{name}/{case}/pooler_output", out["pooled"])
    mean_model = vit.VisionTransformer(vit.ViTConfig(
        **{**vcfg.__dict__, "pool": "cls_mean"}))
    _, feats = mean_model.apply({"params": tree["vision"]}, x)
    close(name, f"{name}/{case}/cls_patch_mean", feats)
    if f"{name}/{case}/pos_embed" in GOLD.files or \
        f"{name}/{case}/pos_embed/sample" in GOLD.files:
      gh, gw = x.shape[1] // vcfg.patch, x.shape[2] // vcfg.patch
      pos = tree["vision"]["pos_embed"]
      patch = vit.interpolate_grid(jax.numpy.asarray(pos[1:]), vcfg.grid, (gh, gw),
                                   vcfg.interpolation == "bicubic_antialias")
      close(name, f"{name}/{case}/pos_embed",
            np.concatenate([pos[:1], np.asarray(patch)])[None])


@pytest.mark.parametrize("name", [n for n in NAMES if ARCH[fx.CONFIGS[n][0]] == "siglip"])
def test_siglip_towers_and_logits_equal_transformers(imported, name):
  vcfg, tcfg, tree = imported[name]
  ids = _input(name, "input_ids")
  text = vit.TextTransformer(tcfg)
  tout = text.apply({"params": tree["text"]}, ids, method=text.encode)
  for i, h in enumerate(tout["hidden_states"]):
    close(name, f"{name}/text/hidden_states_{i}", h)
  close(name, f"{name}/text/last_hidden_state", tout["tokens"])
  close(name, f"{name}/text/pooler_output", tout["pooled"])
  model = vit.VisionTransformer(vcfg)
  for case in _cases(name):
    x = _input(name, f"{case}/pixel_values").transpose(0, 2, 3, 1)
    out = model.apply({"params": tree["vision"]}, x, method=model.encode)
    for i, h in enumerate(out["hidden_states"]):
      close(name, f"{name}/{case}/hidden_states_{i}", h)
    close(name, f"{name}/{case}/last_hidden_state", out["tokens"])
    close(name, f"{name}/{case}/pooler_output", out["pooled"])
    close(name, f"{name}/{case}/image_embeds", vit.normalize(out["pooled"]))
    close(name, f"{name}/{case}/text_embeds", vit.normalize(tout["pooled"]))
    logits = vit.logits_per_image(out["pooled"], tout["pooled"], tree["logit_scale"],
                                  tree["logit_bias"])
    close(name, f"{name}/{case}/logits_per_image", logits)
    close(name, f"{name}/{case}/logits_per_text", np.asarray(logits).T)
    if f"{name}/{case}/pos_embed" in GOLD.files:
      gh, gw = x.shape[1] // vcfg.patch, x.shape[2] // vcfg.patch
      pos = vit.interpolate_grid(jax.numpy.asarray(tree["vision"]["pos_embed"]),
                                 vcfg.grid, (gh, gw), False)
      close(name, f"{name}/{case}/pos_embed", np.asarray(pos)[None])


def test_the_resize_matrices_reproduce_known_values():
  # the same size: the identity, for both kernels
  for aa in (False, True):
    np.testing.assert_allclose(vit.resize_matrix(5, 5, aa), np.eye(5), atol=1e-12)
  # every row sums to 1 (a constant table stays constant)
  for n_in, n_out in ((7, 9), (9, 7), (37, 16), (4, 11)):
    for aa in (False, True):
      np.testing.assert_allclose(vit.resize_matrix(n_in, n_out, aa).sum(1), 1.0,
                                 atol=1e-12)
  # upsampling 2 -> 4 without antialias: PyTorch's bicubic (a = -0.75) weights
  w = vit.resize_matrix(2, 4, False)
  t = 0.75  # output 1: source x = 1.5 * 0.5 - 0.5 = 0.25 -> taps at -1, 0, 1, 2
  taps = vit._cubic(np.array([1 + 0.25, 0.25, 0.75, 1.75]), -0.75)  # pylint: disable=protected-access
  np.testing.assert_allclose(w[1], [taps[0] + taps[1], taps[2] + taps[3]], atol=1e-12)
  del t


@pytest.mark.torch
@pytest.mark.parametrize("name", ["dinov2_tiny", "dinov2_swiglu_reg", "siglip_tiny"])
def test_against_live_transformers(imported, name, tmp_path):
  """The same checkpoint folder through transformers now (needs torch and
  transformers: `python3 run.py test --torch`), on new inputs: images at the
  native size and at another one, and SigLIP's text."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  folder = str(tmp_path / name)
  fx.write_checkpoint(name, folder, LAYOUT[name]["keys"])
  ref = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
  vcfg, tcfg, tree = imported[name]
  rng = np.random.default_rng(7)
  model = vit.VisionTransformer(vcfg)
  side = vcfg.image_size
  for h, w in ((side, side), (side + vcfg.patch, side + 2 * vcfg.patch)):
    x = rng.normal(size=(2, h, w, 3)).astype(np.float32)
    with torch.no_grad():
      pv = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
      if tcfg is None:
        want = ref(pixel_values=pv).pooler_output.numpy()
      else:
        want = ref.vision_model(pixel_values=pv, interpolate_pos_encoding=(h != side)
                                ).pooler_output.numpy()
    _, got = model.apply({"params": tree["vision"]}, x)
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max(), rtol=0)
  if tcfg is not None:
    ids = rng.integers(2, tcfg.vocab, (3, tcfg.max_length))
    with torch.no_grad():
      want = ref.text_model(input_ids=torch.from_numpy(ids)).pooler_output.numpy()
    got = vit.TextTransformer(tcfg).apply({"params": tree["text"]}, ids)
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max(), rtol=0)
