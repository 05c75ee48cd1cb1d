"""CIFAR-sized classifiers used in the adversarial-distillation literature.

Every model takes inputs in [0, 1] and normalises inside (``Normalize`` as its first layer), so
attacks work in pixel space. ``width`` scales the channel counts for quick runs.

- ``resnet18``: He et al. 2016, CIFAR variant (3×3 stem, no max-pool); last block ``layer4`` (4×4).
- ``preact_resnet18``: He et al. 2016b; last block ``layer4`` (4×4), then ``bn`` and ``relu``.
- ``mobilenet_v2``: Sandler et al. 2018, CIFAR variant (stride 1 stem); last conv ``conv2`` (4×4),
  then ``bn2`` and ``relu``.
- ``wrn34_10``: Zagoruyko & Komodakis 2016, depth 34, widen 10; last block ``block3`` (8×8), then
  ``bn`` and ``relu``.

The final activation before pooling is a module (``relu``) wherever it follows a norm layer, so
:func:`softrank_ad.grad_cam`'s automatic layer (the last 4-D output) is the post-ReLU feature map
of classic Grad-CAM, as ``layer4`` of the ResNet-18 already is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2471, 0.2435, 0.2616)


class Normalize(nn.Module):
    def __init__(self, mean=CIFAR_MEAN, std=CIFAR_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.in_planes = width
        self.layer1 = self._layer(widths[0], 1)
        self.layer2 = self._layer(widths[1], 2)
        self.layer3 = self._layer(widths[2], 2)
        self.layer4 = self._layer(widths[3], 2)
        self.linear = nn.Linear(widths[3], num_classes)

    def _layer(self, planes: int, stride: int) -> nn.Sequential:
        blocks = []
        for s in (stride, 1):
            blocks.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.in_planes = width
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.layer1 = self._layer(widths[0], 1)
        self.layer2 = self._layer(widths[1], 2)
        self.layer3 = self._layer(widths[2], 2)
        self.layer4 = self._layer(widths[3], 2)
        self.bn = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.linear = nn.Linear(widths[3], num_classes)

    def _layer(self, planes: int, stride: int) -> nn.Sequential:
        blocks = []
        for s in (stride, 1):
            blocks.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.normalize(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = self.relu(self.bn(out))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        planes = expansion * in_planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride == 1 and in_planes != out_planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, bias=False), nn.BatchNorm2d(out_planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2(nn.Module):
    # (expansion, out_planes, num_blocks, stride); strides 1 early, as in the CIFAR variant.
    CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        scale = lambda c: max(8, int(c * width))  # noqa: E731
        self.normalize = Normalize()
        self.conv1 = nn.Conv2d(3, scale(32), 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(scale(32))
        layers, in_planes = [], scale(32)
        for expansion, out, blocks, stride in self.CFG:
            for s in [stride] + [1] * (blocks - 1):
                layers.append(InvertedResidual(in_planes, scale(out), expansion, s))
                in_planes = scale(out)
        self.layers = nn.Sequential(*layers)
        self.conv2 = nn.Conv2d(in_planes, scale(1280), 1, bias=False)
        self.bn2 = nn.BatchNorm2d(scale(1280))
        self.relu = nn.ReLU()
        self.linear = nn.Linear(scale(1280), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = self.relu(self.bn2(self.conv2(self.layers(out))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class WideBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if in_planes != out_planes or stride != 1:
            self.shortcut = nn.Conv2d(in_planes, out_planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class WideResNet(nn.Module):
    def __init__(self, depth: int = 34, widen: int = 10, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"depth must be 6k + 4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.normalize = Normalize()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.block1 = self._group(widths[0], widths[1], n, 1)
        self.block2 = self._group(widths[1], widths[2], n, 2)
        self.block3 = self._group(widths[2], widths[3], n, 2)
        self.bn = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(widths[3], num_classes)

    @staticmethod
    def _group(in_planes: int, out_planes: int, n: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            *[WideBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1) for i in range(n)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.normalize(x))
        out = self.block3(self.block2(self.block1(out)))
        out = self.relu(self.bn(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class Sharpened(nn.Module):
    """A model with its logits multiplied by ``k``: the same ranking of classes, a more (k > 1) or
    less (k < 1) confident softmax. Used to vary a teacher's confidence and nothing else."""

    def __init__(self, model: nn.Module, k: float) -> None:
        super().__init__()
        self.model, self.k = model, float(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k * self.model(x)


def resnet18(num_classes: int = 10, width: int = 64) -> ResNet18:
    return ResNet18(num_classes, width)


def preact_resnet18(num_classes: int = 10, width: int = 64) -> PreActResNet18:
    return PreActResNet18(num_classes, width)


def mobilenet_v2(num_classes: int = 10, width: float = 1.0) -> MobileNetV2:
    return MobileNetV2(num_classes, width)


def wrn34_10(num_classes: int = 10, widen: int = 10) -> WideResNet:
    return WideResNet(34, widen, num_classes)


MODELS = {
    "resnet18": resnet18,
    "preact_resnet18": preact_resnet18,
    "mobilenet_v2": mobilenet_v2,
    "wrn34_10": wrn34_10,
}


def build(name: str, num_classes: int = 10, width: float | None = None) -> nn.Module:
    """A model by name; ``width`` (base channels, or widen factor for WRN) shrinks it for quick runs."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    if width is None:
        return MODELS[name](num_classes)
    if name == "mobilenet_v2":
        return MODELS[name](num_classes, float(width))
    return MODELS[name](num_classes, int(width))
