"""Writes tests/data/pretrained/: torchvision's outputs for seeded weights.

    python tests/data/make_pretrained.py [OUT_DIR]     (needs torch, torchvision)

For ResNet-18 and ResNet-50 it builds torchvision's model with `weights=None`,
loads the seeded weights of `pretrained_fixture` (strict: every key, every
shape), and records, for the two images of `MODEL_IMAGES` through torchvision's
evaluation transform (the weights' own: Resize 256 / 232, CenterCrop 224,
bilinear, ImageNet's Normalize): the preprocessed uint8 crop, logits, features
(the pooled penultimate activations) and each stage's output (layer1-4, NHWC,
every `STRIDE`-th value and every channel's mean). It also records torchvision's
`Resize` + `CenterCrop` of the images of `PREPROCESS_CASES`. The key list with
shapes and dtypes goes into layout.json, with the weights' SHA-256, so the test
regenerates the very same weights without torch and says so if it cannot.

Nothing here is imported by the test: its outputs are.
"""

import hashlib
import json
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrained_fixture as fx  # noqa: E402

STRIDE = 97
RESIZE = {"resnet18": 256, "resnet50": 232}


def digest(sd: dict) -> str:
  h = hashlib.sha256()
  for k in sorted(sd):
    h.update(k.encode())
    h.update(np.ascontiguousarray(sd[k]).tobytes())
  return h.hexdigest()


def main(out: str) -> None:
  os.makedirs(out, exist_ok=True)
  torch.manual_seed(0)
  layout, arrays = {}, {}
  for arch in fx.ARCHS:
    model = getattr(torchvision.models, arch)(weights=None).eval()
    keys = {k: list(v.shape) for k, v in model.state_dict().items()}
    sd = fx.state_dict(arch, keys)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()},
                          strict=True)
    layout[arch] = {"keys": keys, "sha256": digest(sd)}
    stages = {}
    for s in range(1, 5):
      getattr(model, f"layer{s}").register_forward_hook(
          lambda m, i, o, s=s: stages.__setitem__(s, o.detach()))
    tf = transforms.Compose([
        transforms.Resize(RESIZE[arch], interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(224)])
    norm = transforms.Compose([transforms.ToTensor(), transforms.Normalize(
        mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    for i, (h, w) in enumerate(fx.MODEL_IMAGES):
      crop = tf(Image.fromarray(fx.image(h, w)))
      x = norm(crop)[None]
      with torch.no_grad():
        y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        y = model.layer4(model.layer3(model.layer2(model.layer1(y))))
        feats = torch.flatten(model.avgpool(y), 1)
        logits = model(x)
      assert torch.allclose(model.fc(feats), logits, atol=1e-5)
      p = f"{arch}/{i}/"
      arrays[p + "crop"] = np.asarray(crop, np.uint8)
      arrays[p + "logits"] = logits[0].numpy()
      arrays[p + "features"] = feats[0].numpy()
      for s, o in stages.items():
        nhwc = o[0].permute(1, 2, 0).numpy()
        arrays[p + f"layer{s}_sample"] = nhwc.reshape(-1)[::STRIDE].copy()
        arrays[p + f"layer{s}_channel_mean"] = nhwc.mean((0, 1))
  for j, (h, w, resize, crop, interp) in enumerate(fx.PREPROCESS_CASES):
    mode = getattr(transforms.InterpolationMode, interp.upper())
    tf = transforms.Compose([transforms.Resize(resize, interpolation=mode),
                             transforms.CenterCrop(crop)])
    arrays[f"preprocess/{j}"] = np.asarray(tf(Image.fromarray(fx.image(h, w))), np.uint8)
  np.savez_compressed(os.path.join(out, "torchvision_outputs.npz"), **arrays)
  layout["made_with"] = {"torch": torch.__version__,
                         "torchvision": torchvision.__version__,
                         "pillow": Image.__version__, "numpy": np.__version__,
                         "stride": STRIDE}
  with open(os.path.join(out, "layout.json"), "w") as f:
    json.dump(layout, f, indent=1, sort_keys=True)
    f.write("\n")
  print(f"wrote {out}: {len(arrays)} arrays, "
        f"{os.path.getsize(os.path.join(out, 'torchvision_outputs.npz'))} bytes")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else
       os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained"))
