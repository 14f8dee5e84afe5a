"""jaxal's ResNet-18 in PyTorch, for the benchmarks' reference numbers only
(torchvision's layout: no conv biases, BatchNorm after every convolution; the
CIFAR stem is one 3x3/1 convolution). Never imported by jaxal."""

from __future__ import annotations


def resnet18(width: int, stem: str, outputs: int):
  """nn.Sequential of ResNet-18 at `width`, `stem`, ending in a Linear layer to
  `outputs` (0: the pooled features, no head)."""
  from torch import nn  # noqa: PLC0415
  import torch  # noqa: PLC0415

  class Block(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.b1 = nn.BatchNorm2d(cout)
      self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.b2 = nn.BatchNorm2d(cout)
      self.down = None
      if stride != 1 or cin != cout:
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                  nn.BatchNorm2d(cout))

    def forward(self, x):
      y = torch.relu(self.b1(self.c1(x)))
      y = self.b2(self.c2(y))
      return torch.relu(y + (x if self.down is None else self.down(x)))

  layers = ([nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
             nn.ReLU(), nn.MaxPool2d(3, 2, 1)] if stem == "imagenet" else
            [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
             nn.ReLU()])
  cin = width
  for i in range(4):
    for j in range(2):
      cout = width * 2 ** i
      layers.append(Block(cin, cout, 2 if (i > 0 and j == 0) else 1))
      cin = cout
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
  if outputs:
    layers.append(nn.Linear(cin, outputs))
  return nn.Sequential(*layers)
