"""grad_cam / AttributionAlignmentLoss: gradcheck, side effects, errors, training through maps.
The comparisons with pytorch-grad-cam are in test_attribution_oracle.py (the GPU machine has no
grad-cam; this module runs there)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import DEVICES
from softrank_ad import AttributionAlignmentLoss, attribution_alignment_loss, grad_cam
from softrank_ad_examples import models


def small(name: str) -> nn.Module:
    width = {"resnet18": 8, "preact_resnet18": 8, "mobilenet_v2": 0.25, "wrn34_10": 1}[name]
    model = models.build(name, width=width)
    # At random init some maps are ~1e-6, where min-max's 1e-7 eps is no longer negligible and
    # would blur the comparisons below; a larger classifier scales every map up alike.
    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    classifier.weight.data.mul_(1000)
    return model


@pytest.mark.parametrize(
    "name,expected",
    [("resnet18", "layer4"), ("preact_resnet18", "relu"), ("wrn34_10", "relu"), ("mobilenet_v2", "relu")],
)
def test_automatic_layer_is_the_post_relu_feature_map(name, expected):
    # Every example model ends in a ReLU module, so the automatic choice is classic Grad-CAM's
    # layer: non-negative activations, not the BatchNorm output before them.
    model = small(name).eval()
    x = torch.rand(2, 3, 32, 32)
    _, auto = grad_cam(model, x, "predicted", normalize="none", output_size="layer")
    _, named = grad_cam(model, x, "predicted", layer=expected, normalize="none", output_size="layer")
    torch.testing.assert_close(auto, named)
    feature = {}
    handle = model.get_submodule(expected).register_forward_hook(lambda m, i, o: feature.setdefault("out", o))
    with torch.no_grad():
        model(x)
    handle.remove()
    assert feature["out"].min() >= 0 and feature["out"].dim() == 4


def test_returns_the_forward_logits_and_targets_policies():
    model = small("resnet18").eval()
    x = torch.rand(3, 3, 32, 32)
    logits, _ = grad_cam(model, x, "predicted")
    torch.testing.assert_close(logits, model(x))
    predicted = logits.argmax(-1)
    _, by_policy = grad_cam(model, x, "predicted")
    _, by_tensor = grad_cam(model, x, predicted)
    _, by_label = grad_cam(model, x, "label", y=predicted)
    torch.testing.assert_close(by_policy, by_tensor)
    torch.testing.assert_close(by_label, by_tensor)


class TinyConvNet(nn.Module):
    """Sigmoid features and positive classifier weights: every channel weight α and so every CAM
    value is positive, which keeps finite differences away from the ReLU's kink."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.act = nn.Sigmoid()
        self.fc = nn.Linear(3, 4)
        self.fc.weight.data.abs_()

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).mean((2, 3)))


class WithWeights(nn.Module):
    """Runs ``net`` with the given parameter tensors, so gradcheck can perturb them."""

    def __init__(self, net, weights):
        super().__init__()
        self.net, self.weights = net, weights

    def forward(self, x):
        return torch.func.functional_call(self.net, self.weights, (x,))


def test_gradcheck_double_backward_wrt_input_and_parameters():
    net = TinyConvNet().double()
    names = [n for n, _ in net.named_parameters()]
    x = torch.rand(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([1, 3])

    def maps(inp, *weights):
        model = WithWeights(net, dict(zip(names, weights)))
        return grad_cam(model, inp, targets, layer="net.act", normalize="none", output_size="layer")[1]

    weights = [p.detach().clone().requires_grad_() for p in net.parameters()]
    assert maps(x, *weights).min() > 0
    assert torch.autograd.gradcheck(maps, (x, *weights))
    assert torch.autograd.gradgradcheck(maps, (x, *weights))


def _hook_counts(model):
    return [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()]


def test_no_side_effects_on_success_and_on_error():
    model = small("resnet18").train()
    model.layer2.eval()
    modes = [m.training for m in model.modules()]
    hooks = _hook_counts(model)
    x = torch.rand(2, 3, 32, 32)
    grad_cam(model, x, "predicted")
    assert all(p.grad is None for p in model.parameters())
    assert [m.training for m in model.modules()] == modes and _hook_counts(model) == hooks

    with pytest.raises(RuntimeError):
        grad_cam(model, torch.rand(2, 5, 32, 32), "predicted")  # wrong channel count: conv raises
    with pytest.raises(ValueError):
        grad_cam(model, x, torch.tensor([0, 11]))
    assert all(p.grad is None for p in model.parameters())
    assert [m.training for m in model.modules()] == modes and _hook_counts(model) == hooks


def test_clear_errors():
    model = small("resnet18")
    x = torch.rand(2, 3, 32, 32)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with pytest.raises(ValueError, match="no spatial layer found.*Module outputs seen"):
        grad_cam(flat, x, "predicted")
    with pytest.raises(ValueError, match="layer='layer9' does not exist in ResNet18.*'layer4'"):
        grad_cam(model, x, "predicted", layer="layer9")
    with pytest.raises(ValueError, match="layer 'linear' must output a 4-D"):
        grad_cam(model, x, "predicted", layer="linear")
    unused = nn.Conv2d(3, 3, 1)
    model.unused = unused
    with pytest.raises(ValueError, match="layer 'unused' did not run"):
        grad_cam(model, x, "predicted", layer="unused")
    with pytest.raises(ValueError, match=r"target holds classes outside \[0, 10\)"):
        grad_cam(model, x, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        grad_cam(model, x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match='target="label" needs the labels'):
        grad_cam(model, x, "label")
    with pytest.raises(ValueError, match=r"x must be a \(B, C, H, W\)"):
        grad_cam(model, torch.rand(3, 32, 32), "predicted")


def test_frozen_model_under_no_grad():
    model = small("resnet18").eval().requires_grad_(False)
    with torch.no_grad():
        _, maps = grad_cam(model, torch.rand(2, 3, 32, 32), "predicted", create_graph=False)
    assert maps.shape == (2, 32, 32) and maps.max() > 0.99


def test_data_parallel_wrapper():
    model = small("resnet18").eval()
    x = torch.rand(2, 3, 32, 32)
    _, plain = grad_cam(model, x, "predicted", layer="layer4")
    _, wrapped = grad_cam(nn.DataParallel(model), x, "predicted", layer="layer4")
    torch.testing.assert_close(wrapped, plain)


@pytest.mark.parametrize("device", DEVICES)
def test_bfloat16_autocast(device):
    model = small("resnet18").eval().to(device)
    x = torch.rand(2, 3, 32, 32, device=device)
    _, reference = grad_cam(model, x, "predicted")
    with torch.autocast(device, dtype=torch.bfloat16):
        _, maps = grad_cam(model, x, "predicted")
    assert maps.dtype == torch.float32
    assert (maps - reference).abs().mean() < 0.1


def test_alignment_loss_different_resolutions_and_detached_teacher():
    student, teacher = small("resnet18"), small("wrn34_10").eval()
    x, y = torch.rand(3, 3, 32, 32), torch.tensor([1, 2, 3])
    loss_fn = AttributionAlignmentLoss()
    loss, z_s, z_t = attribution_alignment_loss(student, teacher, x, y, **loss_fn.settings())
    assert loss.ndim == 0 and z_s.shape == z_t.shape == (3, 10)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    per_sample, z_s2, z_t2 = AttributionAlignmentLoss(reduction="none")(student, teacher, x, y)
    assert per_sample.shape == (3,)
    torch.testing.assert_close(z_s2, z_s)  # the module returns the function's logits too
    torch.testing.assert_close(z_t2, z_t)
    torch.testing.assert_close(per_sample.mean(), loss.detach(), rtol=1e-5, atol=1e-6)
    assert not list(AttributionAlignmentLoss(student_layer=student.layer4).parameters())


def test_detach_teacher_false_gives_input_gradient_through_both_maps():
    student, teacher = small("resnet18").eval(), small("resnet18").eval().requires_grad_(False)
    x, y = torch.rand(2, 3, 32, 32, requires_grad=True), torch.tensor([0, 1])
    loss = AttributionAlignmentLoss(detach_teacher=False)(student, teacher, x, y).loss
    (g_both,) = torch.autograd.grad(loss, x)
    x2 = x.detach().requires_grad_()
    loss = AttributionAlignmentLoss()(student, teacher, x2, y).loss
    (g_student_only,) = torch.autograd.grad(loss, x2)
    assert g_both.abs().sum() > 0 and not torch.allclose(g_both, g_student_only)


def test_training_on_alignment_alone_reduces_it():
    torch.manual_seed(1)
    teacher = small("resnet18").eval().requires_grad_(False)
    student = small("mobilenet_v2").train()
    x, y = torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,))
    loss_fn = AttributionAlignmentLoss()
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
    first = None
    # 80 steps: the post-ReLU map of MobileNetV2's `relu` takes longer to move than the
    # pre-ReLU `bn2` map the automatic choice used to pick (at 40 steps: -30% vs -65%).
    for _ in range(80):
        optimizer.zero_grad()
        loss = loss_fn(student, teacher, x, y).loss
        first = first if first is not None else loss.item()
        loss.backward()
        optimizer.step()
    student.eval()
    assert loss_fn(student, teacher, x, y).loss.item() < 0.5 * first


class InplaceAfterBN(nn.Module):
    def __init__(self, inplace: bool):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU(inplace=inplace)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.act(self.bn(self.conv(x))).mean((2, 3)))


def test_in_place_op_after_the_layer_frozen_works_trainable_is_explained():
    torch.manual_seed(0)
    inplace, plain = InplaceAfterBN(True).eval(), InplaceAfterBN(False).eval()
    plain.load_state_dict(inplace.state_dict())
    x = torch.rand(2, 3, 8, 8)
    inplace.requires_grad_(False)
    plain.requires_grad_(False)
    # Frozen (a teacher): the map of the pre-ReLU "bn" output, as with an out-of-place ReLU.
    _, frozen = grad_cam(inplace, x, "predicted", layer="bn", normalize="none")
    _, expected = grad_cam(plain, x, "predicted", layer="bn", normalize="none")
    torch.testing.assert_close(frozen, expected)
    # Trainable (a student): the named layer's map is that of its output as returned, too.
    inplace.requires_grad_(True)
    plain.requires_grad_(True)
    _, trainable = grad_cam(inplace, x, "predicted", layer="bn", normalize="none")
    torch.testing.assert_close(trainable, grad_cam(plain, x, "predicted", layer="bn", normalize="none")[1])
    _, auto = grad_cam(inplace, x, "predicted")  # the automatic layer is the ReLU's own output
    _, named = grad_cam(plain, x, "predicted", layer="act")
    torch.testing.assert_close(auto, named)


class FunctionalInplaceAfterFeatures(nn.Module):
    """torchvision's DenseNet in small: F.relu(..., inplace=True) on the features' output, in the
    model's forward, where no module could be named instead."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out = F.relu(self.features(x), inplace=True)
        return self.fc(out.mean((2, 3)))


def test_automatic_layer_modified_by_a_functional_in_place_op_is_found_and_copied():
    import softrank_ad.attribution as attribution

    torch.manual_seed(0)
    model = FunctionalInplaceAfterFeatures().train()
    twin = FunctionalInplaceAfterFeatures().train()
    twin.load_state_dict(model.state_dict())
    x = torch.rand(4, 3, 8, 8)
    logits, auto = grad_cam(model, x, "predicted")
    logits_named, named = grad_cam(twin, x, "predicted", layer="features")
    torch.testing.assert_close(auto, named)
    torch.testing.assert_close(logits, logits_named)
    # One forward's worth of BatchNorm statistics, though the model ran twice on the first call.
    for a, b in zip(model.buffers(), twin.buffers()):
        torch.testing.assert_close(a, b)
    assert attribution._MODIFIED_AFTER[model] == "features"  # later calls name it directly
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    grad_cam(model, x, "predicted")
    assert len(calls) == 1


class TinyViT(nn.Module):
    """Patch embedding, a class token, two transformer blocks, a linear head: ViT-shaped. As for
    a real ViT, Grad-CAM's layer is inside the stack ("blocks.0"): after the last attention only
    the class token reaches the head, so patch tokens there get no gradient."""

    def __init__(self, dim: int = 16, classes: int = 5):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 8, stride=8)  # 32×32 → 4×4 patches
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = nn.Sequential(
            *[nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True) for _ in range(2)]
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1)
        return self.head(self.norm(self.blocks(tokens))[:, 0])


def tokens_to_grid(t: torch.Tensor) -> torch.Tensor:
    b, n, k = t.shape
    side = int((n - 1) ** 0.5)
    return t[:, 1:].reshape(b, side, side, k).permute(0, 3, 1, 2)


def test_a_transformer_student_trains_through_alignment():
    torch.manual_seed(0)
    student, teacher = TinyViT(classes=10), small("resnet18").eval().requires_grad_(False)
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([1, 2])
    # Training through a Grad-CAM map is a double backward; torch's fused CPU/GPU attention
    # kernels have none, the math kernel has.
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        loss = AttributionAlignmentLoss(student_layer="blocks.0", student_reshape_transform=tokens_to_grid)(
            student, teacher, x, y
        ).loss
        loss.backward()
    assert loss > 0 and student.embed.weight.grad.abs().sum() > 0
