"""torchvision/timm weights into jaxal's ResNet-18 and ResNet-50, exactly.

The reference outputs in tests/data/pretrained/ were computed by torchvision
itself (tests/data/make_pretrained.py, torch 2.14.1 + torchvision 0.29.1, on an
AMD EPYC Zen 3) for seeded weights that tests/data/pretrained_fixture.py
regenerates here without torch. `python3 run.py test --torch` (or
`-m torch` with torch installed) also runs the comparison against a live
torchvision.

Tolerance of the float comparisons: jaxal's XLA:CPU and PyTorch's oneDNN sum each
convolution's products (up to 3 x 3 x 512 = 4,608 of them) in different orders,
each rounding at float32's eps = 1.2e-7 of the partial sums. Seen between the two
on an AMD Zen 3 (AVX2), with jaxal's XLA routing and with XLA's default: at most
1.9e-6 of the array's largest magnitude (ResNet-50's logits, through 53 layers),
2e-7 to 1.5e-6 for features and stage outputs. `RTOL` = 2e-5 of each array's
largest magnitude leaves a tenfold margin for other CPUs and is still far below
what a swapped BatchNorm statistic or a transposed kernel changes (the random
weights keep every statistic away from 0/1; a test checks one such swap).
"""

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxal.datasets import images
from jaxal.models import pretrained, resnet, source

from tests.conftest import ROOT  # noqa: E402
DATA = os.path.join(ROOT, "tests", "data")
sys.path.insert(0, DATA)
import pretrained_fixture as fx  # noqa: E402  pylint: disable=g-import-not-at-top

GOLDEN = os.path.join(DATA, "pretrained")
RTOL = 2e-5


@pytest.fixture(scope="module")
def golden():
  with open(os.path.join(GOLDEN, "layout.json")) as f:
    layout = json.load(f)
  with np.load(os.path.join(GOLDEN, "torchvision_outputs.npz")) as z:
    return layout, {k: z[k] for k in z.files}


def digest(sd):
  import hashlib  # pylint: disable=g-import-not-at-top
  h = hashlib.sha256()
  for k in sorted(sd):
    h.update(k.encode())
    h.update(np.ascontiguousarray(sd[k]).tobytes())
  return h.hexdigest()


def weights(golden, arch):
  layout, _ = golden
  sd = fx.state_dict(arch, layout[arch]["keys"])
  assert digest(sd) == layout[arch]["sha256"], (
      "this numpy draws other seeded weights than the one that wrote the golden "
      "files; rerun tests/data/make_pretrained.py")
  return sd


def save_safetensors(sd, path):
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, path)
  return path


def close(got, want, what):
  scale = float(np.abs(want).max())
  err = float(np.abs(np.asarray(got, np.float64) - want).max())
  assert err <= RTOL * scale, f"{what}: max error {err:.3g} > {RTOL} x {scale:.3g}"


def stage_outputs(model, variables, x):
  """Each stage's output (the last block's) and the model's outputs."""
  (logits, feats), state = model.apply(variables, x, train=False,
                                       capture_intermediates=True)
  names = np.cumsum(model.stage_sizes) - 1
  kind = model.block.__name__
  inter = state["intermediates"]
  return logits, feats, [inter[f"{kind}_{k}"]["__call__"][0] for k in names]


@pytest.mark.parametrize("arch", fx.ARCHS)
def test_imported_weights_give_torchvisions_outputs(golden, arch, tmp_path):
  _, want = golden
  path = save_safetensors(weights(golden, arch), str(tmp_path / f"{arch}.safetensors"))
  cfg = pretrained.import_source(arch, path, str(tmp_path / "src"))
  assert cfg["preprocess"] == pretrained.DEFAULT_PREPROCESS[arch].to_json()
  trained = source.load_workdir(str(tmp_path / "src"))
  assert trained.imported and trained.snapshots == [trained.final]
  assert resnet.num_params(trained.final["params"]) == \
      {"resnet18": 11_689_512, "resnet50": 25_557_032}[arch]
  prep = trained.preprocess
  for i, (h, w) in enumerate(fx.MODEL_IMAGES):
    crop = np.asarray(prep.apply(Image.fromarray(fx.image(h, w))), np.uint8)
    np.testing.assert_array_equal(crop, want[f"{arch}/{i}/crop"])  # pixel for pixel
    logits, feats, stages = stage_outputs(trained.model, trained.final,
                                          jnp.asarray(prep.normalize(crop[None])))
    p = f"{arch}/{i}/"
    close(logits[0], want[p + "logits"], p + "logits")
    close(feats[0], want[p + "features"], p + "features")
    assert int(np.argmax(logits[0])) == int(np.argmax(want[p + "logits"]))
    for s, out in enumerate(stages, 1):
      out = np.asarray(out[0])
      close(out.reshape(-1)[::golden[0]["made_with"]["stride"]],
            want[p + f"layer{s}_sample"], p + f"layer{s}")
      close(out.mean((0, 1)), want[p + f"layer{s}_channel_mean"], p + f"layer{s} mean")


def test_a_swapped_statistic_is_far_outside_the_tolerance(golden, tmp_path):
  sd = dict(weights(golden, "resnet18"))
  sd["bn1.running_mean"], sd["bn1.running_var"] = sd["bn1.running_var"], \
      sd["bn1.running_mean"].__abs__()
  model, variables = pretrained.convert("resnet18", sd)
  x = images.Preprocess(256, 224).normalize(golden[1]["resnet18/0/crop"][None])
  logits, _ = model.apply(variables, x, train=False)
  with pytest.raises(AssertionError):
    close(logits[0], golden[1]["resnet18/0/logits"], "logits")


@pytest.mark.parametrize("case", range(len(fx.PREPROCESS_CASES)))
def test_preprocessing_is_torchvisions_resize_and_center_crop(golden, case):
  h, w, resize, crop, interp = fx.PREPROCESS_CASES[case]
  prep = images.Preprocess(resize, crop, interp)
  got = np.asarray(prep.apply(Image.fromarray(fx.image(h, w))), np.uint8)
  np.testing.assert_array_equal(got, golden[1][f"preprocess/{case}"])


def test_preprocess_refuses_bad_values():
  for kw, word in ((dict(resize=10, crop=20), "resize >= crop"),
                   (dict(resize=10, crop=8, interpolation="lanczos"), "interpolation"),
                   (dict(resize=10, crop=8, std=(1, 0, 1)), "std")):
    with pytest.raises(ValueError, match=word):
      images.Preprocess(**kw)
  p = images.Preprocess(232, 224, "bicubic", std=(0.5, 0.5, 0.5))
  assert images.Preprocess.from_json(json.loads(json.dumps(p.to_json()))) == p


def test_bad_weights_files_are_refused_naming_the_key_and_nothing_is_written(
    golden, tmp_path):
  sd = weights(golden, "resnet18")
  cases = {
      "missing": ({k: v for k, v in sd.items() if k != "layer2.0.bn1.running_var"},
                  "'layer2.0.bn1.running_var' is missing"),
      "extra": (dict(sd, **{"layer1.0.extra.weight": np.zeros(3, np.float32)}),
                "'layer1.0.extra.weight' is not a variable"),
      "shape": (dict(sd, **{"layer3.1.conv2.weight": sd["layer3.1.conv2.weight"][:, :8]}),
                r"'layer3.1.conv2.weight' has shape \(256, 8, 3, 3\); resnet18 needs "
                r"\(256, 256, 3, 3\)"),
      "nan": (dict(sd, **{"fc.bias": np.full(1000, np.nan, np.float32)}), "non-finite"),
  }
  for name, (bad, message) in cases.items():
    path = save_safetensors(bad, str(tmp_path / f"{name}.safetensors"))
    with pytest.raises(pretrained.WeightsError, match=message):
      pretrained.import_source("resnet18", path, str(tmp_path / "out"))
  # the other architecture, both ways, says which one the file is
  path = save_safetensors(sd, str(tmp_path / "r18.safetensors"))
  with pytest.raises(pretrained.WeightsError, match="a resnet18 file"):
    pretrained.import_source("resnet50", path, str(tmp_path / "out"))
  r50 = save_safetensors(weights(golden, "resnet50"), str(tmp_path / "r50.safetensors"))
  with pytest.raises(pretrained.WeightsError, match="a resnet50 file"):
    pretrained.import_source("resnet18", r50, str(tmp_path / "out"))
  with open(path, "rb") as f:
    head = f.read(4096)
  with open(tmp_path / "cut.safetensors", "wb") as f:
    f.write(head)
  with pytest.raises(pretrained.WeightsError, match="cut.safetensors: not a readable"):
    pretrained.import_source("resnet18", str(tmp_path / "cut.safetensors"),
                             str(tmp_path / "out"))
  with pytest.raises(pretrained.WeightsError, match="--classes: 3 names"):
    pretrained.import_source("resnet18", path, str(tmp_path / "out"),
                             classes=["a", "b", "c"])
  with pytest.raises(pretrained.WeightsError, match="--arch must be one of"):
    pretrained.import_source("resnet34", path, str(tmp_path / "out"))
  assert sorted(os.listdir(tmp_path)) == sorted(
      [f"{n}.safetensors" for n in cases] + ["r18.safetensors", "r50.safetensors",
                                             "cut.safetensors"])
  (tmp_path / "full").mkdir()
  (tmp_path / "full" / "x").write_text("")
  with pytest.raises(pretrained.WeightsError, match="not empty"):
    pretrained.import_source("resnet18", path, str(tmp_path / "full"))


def test_a_wrapped_state_dict_and_imagenet_names(golden, tmp_path):
  sd = weights(golden, "resnet18")
  path = save_safetensors({"module." + k: v for k, v in sd.items()},
                          str(tmp_path / "dp.safetensors"))
  pretrained.import_source("resnet18", path, str(tmp_path / "src"))
  names = (tmp_path / "src" / "classes.txt").read_text().splitlines()
  assert len(names) == 1000 == len(set(names))
  assert names[:3] == ["tench", "goldfish", "great white shark"]


@pytest.mark.torch
@pytest.mark.parametrize("arch", fx.ARCHS)
def test_against_live_torchvision(golden, arch, tmp_path):
  """The same weights through torchvision now, from a .pth (needs torch)."""
  torch = pytest.importorskip("torch")
  torchvision = pytest.importorskip("torchvision")
  sd = weights(golden, arch)
  model = getattr(torchvision.models, arch)(weights=None).eval()
  model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()})
  torch.save(model.state_dict(), tmp_path / "w.pth")
  pretrained.import_source(arch, str(tmp_path / "w.pth"), str(tmp_path / "src"))
  trained = source.load_workdir(str(tmp_path / "src"))
  crop = golden[1][f"{arch}/1/crop"]
  x = trained.preprocess.normalize(crop[None])
  with torch.no_grad():
    want = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
  logits, _ = trained.model.apply(trained.final, x, train=False)
  close(np.asarray(logits), want, f"{arch} logits")
  assert jax.numpy.argmax(logits[0]) == int(np.argmax(want[0]))


def test_to_state_dict_inverts_convert(golden):
  sd = weights(golden, "resnet50")
  model, variables = pretrained.convert("resnet50", sd)
  back = pretrained.to_state_dict(model, variables)
  assert set(back) == set(sd)
  for k, v in sd.items():
    np.testing.assert_array_equal(back[k], v if not k.endswith("tracked") else 0)
