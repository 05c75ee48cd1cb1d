"""The torchvision zoo as students: one SmaraAD step with the automatic Grad-CAM layer, at 64×64.

A new user's first try; densenet121 used to fail here (torchvision applies F.relu(...,
inplace=True) to the features' output, where no module can be named)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torchvision import models as tv

from softrank_ad import make_objective

ZOO = {
    "resnet18": lambda: tv.resnet18(num_classes=10),
    "densenet121": lambda: tv.densenet121(num_classes=10),
    "mobilenet_v3_small": lambda: tv.mobilenet_v3_small(num_classes=10),
    "efficientnet_b0": lambda: tv.efficientnet_b0(num_classes=10),
    "shufflenet_v2_x0_5": lambda: tv.shufflenet_v2_x0_5(num_classes=10),
    "squeezenet1_1": lambda: tv.squeezenet1_1(num_classes=10),
    "regnet_y_400mf": lambda: tv.regnet_y_400mf(num_classes=10),
    "mnasnet0_5": lambda: tv.mnasnet0_5(num_classes=10),
    "googlenet": lambda: tv.googlenet(num_classes=10, aux_logits=False, init_weights=False),
    "alexnet": lambda: tv.alexnet(num_classes=10),
    "vgg11_bn": lambda: tv.vgg11_bn(num_classes=10),
    "convnext_tiny": lambda: tv.convnext_tiny(num_classes=10),
    "swin_t": lambda: tv.swin_t(num_classes=10),
}


def vit_tokens_to_grid(tokens: torch.Tensor) -> torch.Tensor:
    b, n, k = tokens.shape
    side = int((n - 1) ** 0.5)
    return tokens[:, 1:].reshape(b, side, side, k).permute(0, 3, 1, 2)


def one_step(student: nn.Module, **options) -> None:
    torch.manual_seed(0)
    teacher = tv.resnet18(num_classes=10).eval()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    x, y = torch.rand(2, 3, 64, 64), torch.tensor([1, 7])
    objective = make_objective("smaraad", student.train(), teacher, steps=1, **options)
    terms = objective.breakdown(x, y)
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"]) and terms["align_adv"] >= 0
    grads = [p.grad for p in student.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_torchvision_students_train_with_the_automatic_layer(name):
    one_step(ZOO[name]())


@pytest.mark.slow
def test_a_torchvision_vit_student_trains_through_reshape_transform():
    vit = tv.VisionTransformer(
        image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
    )
    with sdpa_kernel(SDPBackend.MATH):  # a double backward: the math attention kernel has one
        one_step(vit, student_layer="encoder.layers.encoder_layer_0", student_reshape_transform=vit_tokens_to_grid)
