"""Fidelity to the official code: one training call of each published method, transcribed from its
repository, against the library with :func:`softrank_ad.official_options`.

Each transcription below is written from the file and commit named in its docstring, keeping the
official code's order of operations (it sets the BatchNorm running statistics and the random
draws) and its reductions; CUDA calls are dropped, deprecated torch arguments spelt as today.
One call is compared on a fixed batch whose images have pixels at exactly 0 and 1 (as CIFAR's
do), with a student and teacher that both have BatchNorm: the adversarial batch, the loss, the
student's gradient and its BatchNorm buffers after the call, equal to float32 rounding.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from softrank_ad import make_objective, official_options
from softrank_ad.terms import DIST, IGDM, KL

STEPS = 5  # the official runs use 10; the transcriptions take the count as an argument


class Net(nn.Module):
    def __init__(self, width: int, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        return self.fc(self.body(x))


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(8, 3, 8, 8, generator=g)
    saturated = torch.rand(x.shape, generator=g)
    x[saturated < 0.15] = 0.0
    x[saturated > 0.85] = 1.0
    y = torch.randint(0, 10, (8,), generator=g)
    torch.manual_seed(1)
    student = Net(6)
    torch.manual_seed(2)
    teacher = Net(8)
    with torch.no_grad():  # a teacher with non-trivial BN statistics, as a trained one has
        for module in teacher.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    teacher.eval().requires_grad_(False)
    return student, teacher, x, y


def outcome(student, loss, x_adv):
    buffers = {k: v.clone() for k, v in student.state_dict().items() if "running" in k or "num_batches" in k}
    grads = {k: p.grad.clone() for k, p in student.named_parameters()}
    return {"loss": loss.detach(), "x_adv": x_adv.detach(), "grads": grads, "buffers": buffers}


def official_call(setup, transcription, seed=0, **kwargs):
    student, teacher, x, y = setup
    student = copy.deepcopy(student).train()
    torch.manual_seed(seed)
    loss, x_adv = transcription(student, teacher, x, y, **kwargs)
    loss.backward()
    return outcome(student, loss, x_adv)


def library_call(setup, name, seed=0, epoch=None, **kwargs):
    student, teacher, x, y = setup
    student = copy.deepcopy(student).train()
    objective = make_objective(name, student, teacher, **kwargs)
    torch.manual_seed(seed)
    x_adv = objective.perturb(x, y)
    loss = objective(x, y, x_adv=x_adv, epoch=epoch)
    loss.backward()
    return outcome(student, loss, x_adv)


def assert_same(official, ours, loss_offset=0.0):
    torch.testing.assert_close(ours["x_adv"], official["x_adv"], rtol=0, atol=1e-6)
    torch.testing.assert_close(ours["loss"] + loss_offset, official["loss"], rtol=1e-5, atol=1e-7)
    for key in official["grads"]:
        torch.testing.assert_close(ours["grads"][key], official["grads"][key], rtol=1e-4, atol=1e-7, msg=key)
    for key in official["buffers"]:
        torch.testing.assert_close(ours["buffers"][key], official["buffers"][key], rtol=1e-5, atol=1e-7, msg=key)


# -- transcriptions ------------------------------------------------------------------------------
def kl_mean(log_p, q):
    """nn.KLDivLoss() with its default reduction: the mean over every element."""
    return F.kl_div(log_p, q, reduction="sum") / log_p.numel()


def attack_pgd(student, x, y, *, eps=8 / 255, step=2 / 255, steps=STEPS):
    """AttackPGD.forward's loop, the same in ARD's main.py and IAD's IAD-I.py (their return value
    S(x') is the caller's next forward)."""
    x_adv = x.detach() + torch.zeros_like(x).uniform_(-eps, eps)
    for _ in range(steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss = F.cross_entropy(student(x_adv), y, reduction="sum")
        grad = torch.autograd.grad(loss, [x_adv])[0]
        x_adv = x_adv.detach() + step * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    return x_adv


def ard_official(student, teacher, x, y, *, alpha=1.0, temp=30.0):
    """goldblum/AdversariallyRobustDistillation@779ade36d612bddb0a5a705fdd74efe7571a1381, main.py:
    AttackPGD.forward and train()."""
    student.train()  # net.train(): the attack runs in train mode
    x_adv = attack_pgd(student, x, y)
    outputs = student(x_adv)
    teacher_outputs = teacher(x)
    basic_outputs = student(x)
    loss = alpha * temp * temp * kl_mean(
        F.log_softmax(outputs / temp, dim=1), F.softmax(teacher_outputs / temp, dim=1)
    ) + (1.0 - alpha) * F.cross_entropy(basic_outputs, y)
    return loss, x_adv


def rslad_official(student, teacher, x, y, *, eps=8 / 255, step=2 / 255, steps=STEPS):
    """zibojia/RSLAD@c40e04f6c4edcd87431d0250b168d503b1293745, resnet18_rslad_cifar10.py and
    rslad_loss.py (rslad_inner_loss)."""

    def kl_loss(a, b):
        return -a * b + torch.log(b + 1e-5) * b

    student.train()
    with torch.no_grad():
        teacher_logits = teacher(x)
    student.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape).detach()
    for _ in range(steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_kl = F.kl_div(F.log_softmax(student(x_adv), dim=1), F.softmax(teacher_logits, dim=1), reduction="none")
            loss_kl = torch.sum(loss_kl)
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + step * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    student.train()
    x_adv = torch.clamp(x_adv, 0.0, 1.0)
    adv_logits = student(x_adv)
    student.train()
    nat_logits = student(x)
    kl_1 = torch.mean(kl_loss(F.log_softmax(adv_logits, dim=1), F.softmax(teacher_logits.detach(), dim=1)))
    kl_2 = torch.mean(kl_loss(F.log_softmax(nat_logits, dim=1), F.softmax(teacher_logits.detach(), dim=1)))
    return 5 / 6.0 * kl_1 + 1 / 6.0 * kl_2, x_adv


def adaad_inner_loss(student, teacher, x, *, step=2 / 255, steps=STEPS, eps=8 / 255):
    """boyellow/AdaAD@9e5c6e5ff73052af196065439517562d37eff6e6, AT_helper.py (the same function is
    in HongsinLee/saad, attacks.py)."""
    student.eval()
    teacher.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape).detach()
    for _ in range(steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_kl = F.kl_div(F.log_softmax(student(x_adv), dim=1), F.softmax(teacher(x_adv), dim=1), reduction="none")
            loss_kl = torch.sum(loss_kl)
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + step * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    student.train()
    return torch.clamp(x_adv, 0.0, 1.0)


def adaad_official(student, teacher, x, y, *, alpha=1.0):
    """boyellow/AdaAD@9e5c6e5ff73052af196065439517562d37eff6e6, main.py, method AdaAD (CIFAR10)."""
    x_adv = adaad_inner_loss(student, teacher, x)
    student.train()
    ori_outputs = student(x)
    adv_outputs = student(x_adv)
    with torch.no_grad():
        t_ori_outputs = teacher(x)
        t_adv_outputs = teacher(x_adv)
    kl_1 = kl_mean(F.log_softmax(adv_outputs, dim=1), F.softmax(t_adv_outputs.detach(), dim=1))
    kl_2 = kl_mean(F.log_softmax(ori_outputs, dim=1), F.softmax(t_ori_outputs.detach(), dim=1))
    return alpha * kl_1 + (1 - alpha) * kl_2, x_adv


def iad_loss(student, x, y, outputs, teacher_outputs, guide, epoch, *, alpha, temp, beta, begin):
    """The loss expression IAD-I.py and AdaAD's AdaAD_with_IAD1 share, S(x) called anew in it."""
    batch = len(outputs)
    weights = torch.ones(batch)
    kl = F.kl_div(F.log_softmax(outputs / temp, dim=1), F.softmax(teacher_outputs / temp, dim=1), reduction="none")
    teacher_term = alpha * temp * temp * (1 / batch) * torch.sum(kl.sum(dim=1))
    if epoch >= begin:
        for pp in range(batch):
            weights[pp] = F.softmax(guide, dim=1)[pp][y[pp].item()].pow(beta).item()
        own = F.kl_div(F.log_softmax(outputs, dim=1), F.softmax(student(x), dim=1), reduction="none")
        return (
            teacher_term
            + alpha * (1 / batch) * torch.sum(own.sum(dim=1).mul(1 - weights))
            + (1.0 - alpha) * F.cross_entropy(student(x), y)
        )
    return teacher_term + (1.0 - alpha) * F.cross_entropy(student(x), y)


def iad_official(student, teacher, x, y, *, epoch, alpha=1.0, temp=1.0, beta=0.1, begin=60):
    """ZFancy/IAD@a8091a8c7552cef43d8f3f28085426cb786ce9d3, IAD-I.py: AttackPGD (as ARD's) and train()."""
    student.train()
    teacher_outputs = teacher(x)
    x_adv = attack_pgd(student, x, y)
    outputs = student(x_adv)
    student(x_adv).detach()  # basicop: computed, never used
    guide = teacher(x_adv)
    loss = iad_loss(
        student, x, y, outputs, teacher_outputs, guide, epoch, alpha=alpha, temp=temp, beta=beta, begin=begin
    )
    return loss, x_adv


def adaiad_official(student, teacher, x, y, *, epoch, alpha=1.0, temp=30.0, beta=0.1, begin=60):
    """boyellow/AdaAD@9e5c6e5ff73052af196065439517562d37eff6e6, main.py, method AdaAD_with_IAD1."""
    x_adv = adaad_inner_loss(student, teacher, x)
    student.train()
    student(x)  # ori_outputs: for the accuracy print only
    adv_outputs = student(x_adv)
    guide = teacher(x_adv)
    teacher_outputs = teacher(x_adv)
    loss = iad_loss(
        student, x, y, adv_outputs, teacher_outputs, guide, epoch, alpha=alpha, temp=temp, beta=beta, begin=begin
    )
    return loss, x_adv


def igdm_official(student, teacher, x, y, *, epoch, igdm_alpha=1.0):
    """HongsinLee/saad@295121c5d2eed827b5b2d6aa42307de809bdfada, igdm.py (AdaAD + IGDM); the
    attack's step size and radius exactly as that file passes them (8/255 and 2/255)."""
    student.train()
    inputs_adv = adaad_inner_loss(student, teacher, x, step=8 / 255.0, eps=2 / 255.0)
    with torch.no_grad():
        delta = inputs_adv - x
        teacher_plus = teacher(inputs_adv)
        teacher_minus = teacher(x - delta)
    student_plus = student(x + delta)
    student_minus = student(x - delta)
    igdm = F.kl_div(
        F.log_softmax(student_plus - student_minus, dim=1),
        F.softmax((teacher_plus - teacher_minus).detach(), dim=1),
        reduction="batchmean",
    )
    kl = F.kl_div(F.log_softmax(student_plus, dim=1), F.softmax(teacher_plus, dim=1), reduction="batchmean")
    return kl + igdm_alpha * (epoch / 200) * igdm, inputs_adv


def dist_official(z_s, z_t, *, beta=1.0, gamma=1.0, tau=1.0):
    """hunto/image_classification_sota@6f7a70a1dd57fd88413d83909d3d53243068f701,
    lib/models/losses/dist_kd.py (DIST.forward and its helpers)."""

    def pearson(a, b, eps=1e-8):
        a, b = a - a.mean(1).unsqueeze(1), b - b.mean(1).unsqueeze(1)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)

    y_s, y_t = (z_s / tau).softmax(dim=1), (z_t / tau).softmax(dim=1)
    inter = tau**2 * (1 - pearson(y_s, y_t).mean())
    intra = tau**2 * (1 - pearson(y_s.transpose(0, 1), y_t.transpose(0, 1)).mean())
    return beta * inter + gamma * intra


def adaad_dist_official(student, teacher, x, y, *, tau=1.0):
    """AdaAD's official attack (above) with DIST's official loss on S(x') and T(x'): DIST has no
    adversarial code of its own; this is the study's ``adaad-dist`` configuration."""
    x_adv = adaad_inner_loss(student, teacher, x)
    student.train()
    adv_outputs = student(x_adv)
    with torch.no_grad():
        t_adv_outputs = teacher(x_adv)
    return dist_official(adv_outputs, t_adv_outputs, tau=tau), x_adv


def saad_official(student, teacher, x, y, *, epoch, beta=0.0, gamma=1.0, igdm_alpha=1.0, epochs=200, lam=1.0):
    """HongsinLee/saad@295121c5d2eed827b5b2d6aa42307de809bdfada: saad.py (the training step),
    attacks.py (saad_inner_loss) and utils.py (samplewise_kl_div, samplewise_renyi_entropy)."""

    def samplewise_kl_div(input_logits, target_logits):
        with torch.no_grad():
            p = F.softmax(target_logits, dim=1)
        return F.kl_div(F.log_softmax(input_logits, dim=1), p, reduction="none").sum(dim=1)

    def renyi_entropy(logits, alpha, eps=1e-12):
        p = F.softmax(logits, dim=1)
        if abs(alpha - 1.0) < 1e-6:
            return -(p * torch.log(p + eps)).sum(dim=1)
        return torch.log((p**alpha).sum(dim=1) + eps) / (1.0 - alpha)

    def saad_inner_loss(step_size=2 / 255.0, epsilon=8 / 255.0):
        student.eval()
        teacher.eval()
        x_temp = x.detach()
        x_temp.requires_grad_(True)
        teacher_logits = teacher(x_temp)
        batch = teacher_logits.shape[0]
        logit_sum = teacher_logits[torch.arange(batch), y].sum()
        gradient = torch.autograd.grad(outputs=logit_sum, inputs=x_temp, create_graph=False, retain_graph=False)[0]
        x_adv = x.detach() + 0.001 * torch.randn_like(x).detach()
        for _ in range(STEPS):
            x_adv.requires_grad_()
            with torch.enable_grad():
                correction = torch.einsum("bchw,bchw->b", gradient, x_adv - x)
                corrected = teacher_logits.detach().clone()
                corrected[torch.arange(batch), y] += lam * correction
                loss_kl = F.kl_div(F.log_softmax(student(x_adv), dim=1), F.softmax(corrected, dim=1), reduction="sum")
            grad = torch.autograd.grad(loss_kl, [x_adv])[0]
            x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
            x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon)
            x_adv = torch.clamp(x_adv, 0.0, 1.0)
        student.train()
        return x_adv.detach()

    student.train()
    with torch.no_grad():
        teacher_clean = teacher(x)
    inputs_adv = saad_inner_loss()
    with torch.no_grad():
        delta = inputs_adv - x
        teacher_plus = teacher(inputs_adv)
        teacher_minus = teacher(x - delta)
    student_plus = student(inputs_adv)
    student_minus = student(x - delta)
    student_clean = student(x)
    entropy = renyi_entropy(teacher_plus, gamma)
    kl_adv = samplewise_kl_div(student_plus, teacher_plus)
    kl_clean = samplewise_kl_div(student_clean, teacher_clean)
    igdm = igdm_alpha * (epoch / epochs) * samplewise_kl_div(student_plus - student_minus, teacher_plus - teacher_minus)
    w = 5 * (entropy - entropy.min().item())
    w = torch.clamp(w, min=0.0)
    w_norm = (w - w.min()) / (w.max() - w.min() + 1e-8)
    return (w * (kl_adv + igdm) + beta * (1 - w_norm) * kl_clean).mean(), inputs_adv


# -- the comparisons -----------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("alpha", [1.0, 0.9])
def test_ard(setup, alpha):
    official = official_call(setup, ard_official, alpha=alpha)
    ours = library_call(setup, "ard", ce_weight=1 - alpha, steps=STEPS, **official_options("ard"))
    assert_same(official, ours)


def test_rslad_up_to_its_teacher_only_constant(setup):
    """RSLAD's loss adds 1e-5 inside log p_T: a constant of the teacher alone, so the gradients
    are equal and the logged loss differs by exactly that constant."""
    official = official_call(setup, rslad_official)
    ours = library_call(setup, "rslad", steps=STEPS, **official_options("rslad"))
    _, teacher, x, _ = setup
    with torch.no_grad():
        p_t = F.softmax(teacher(x), dim=1)
        constant = torch.mean(p_t * (torch.log(p_t + 1e-5) - torch.log(p_t)))
    assert constant.abs() > 1e-7  # the offset is real, and accounted for below
    assert_same(official, ours, loss_offset=constant)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_adaad(setup, alpha):
    official = official_call(setup, adaad_official, alpha=alpha)
    ours = library_call(setup, "adaad", adv_weight=alpha, steps=STEPS, **official_options("adaad"))
    assert_same(official, ours)


@pytest.mark.parametrize("epoch", [10, 70])  # before and after the introspection starts
@pytest.mark.parametrize("alpha", [1.0, 0.8])
@pytest.mark.parametrize("name", ["iad", "adaiad"])
def test_iad_and_adaiad(setup, name, epoch, alpha):
    transcription = iad_official if name == "iad" else adaiad_official
    official = official_call(setup, transcription, epoch=epoch, alpha=alpha)
    ours = library_call(setup, name, epoch=epoch, ce_weight=1 - alpha, steps=STEPS, **official_options(name))
    assert_same(official, ours)


def test_igdm_on_adaad(setup):
    """IGDM's official run: AdaAD's attack, batchmean KLs, S(x + δ) then S(x − δ); its epoch 5 of
    200 (counted from 1) is our epoch 4 (counted from 0)."""
    official = official_call(setup, igdm_official, epoch=5)
    options = dict(clip_start=False, student_forwards=("adv", "reflected"), epsilon=2 / 255, step_size=8 / 255)
    ours = library_call(setup, "adaad", epoch=4, add=IGDM(ramp_epochs=200), steps=STEPS, **options)
    assert_same(official, ours)


@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_dist_on_adaad(setup, tau):
    official = official_call(setup, adaad_dist_official, tau=tau)
    ours = library_call(setup, "adaad", loss=DIST(temperature=tau), steps=STEPS, clip_start=False)
    assert_same(official, ours)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_saad(setup, beta):
    official = official_call(setup, saad_official, epoch=5, beta=beta)
    ours = library_call(setup, "saad", epoch=4, clean_weight=beta, steps=STEPS, **official_options("saad"))
    assert_same(official, ours)


@pytest.mark.parametrize("method", ["ard", "adaad", "saad"])
def test_without_the_official_options_the_call_differs(setup, method):
    """The options matter on this batch: without them the start is clipped and the forwards run
    in the library's order, so the adversarial batch or the BN statistics move."""
    transcription = {"ard": ard_official, "adaad": adaad_official, "saad": saad_official}[method]
    official = official_call(setup, transcription, **({"epoch": 5} if method == "saad" else {}))
    kwargs = {"epoch": 4} if method == "saad" else {}
    if method in ("ard", "adaad"):
        kwargs["kl_reduction"] = "mean"
    ours = library_call(setup, method, steps=STEPS, **kwargs)
    with pytest.raises(AssertionError):
        assert_same(official, ours)


def test_official_options_are_copies_and_name_unknown_methods():
    options = official_options("ADAAD")
    options["clip_start"] = True
    assert official_options("adaad")["clip_start"] is False
    with pytest.raises(ValueError, match="smaraad"):
        official_options("smaraad")
    with pytest.raises(TypeError, match="name"):
        official_options(["adaad"])


def test_student_forwards_are_checked():
    student, teacher = Net(4), Net(4)
    with pytest.raises(TypeError, match="student_forwards"):
        make_objective("adaad", student, teacher, student_forwards="clean")
    with pytest.raises(ValueError, match="student_forwards"):
        make_objective("adaad", student, teacher, student_forwards=("clean", "noisy"))
    with pytest.raises(ValueError, match="not both"):
        make_objective("adaad", student, teacher, student_forwards=("clean",), clean_bn_forward=True)
    assert KL().name == "kl_adv"
