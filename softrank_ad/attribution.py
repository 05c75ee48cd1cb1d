"""Differentiable Grad-CAM and the attribution-region alignment loss (SmaraAD; docs/method.md §3).

pytorch-grad-cam returns detached numpy maps, so a loss built on it trains nothing. Here the map
is built from ``torch.autograd.grad(..., create_graph=True)``: it stays in the graph, so an MSE
between two maps trains the student and has a gradient with respect to the input.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, TypeGuard, get_args

import torch
import torch.nn.functional as F
from torch import nn

from softrank_ad import _deprecation, _validate
from softrank_ad._modes import modes_restored, unwrap

LayerSpec = None | str | nn.Module
#: The class whose map the alignment compares: the true label, or the teacher's predicted class.
CAMTarget = Literal["label", "predicted"]
TargetSpec = torch.Tensor | CAMTarget
OutputSize = None | tuple[int, int] | Literal["layer"]
#: Maps a layer's activation to (B, K, h, w), e.g. a transformer's (B, tokens, K) tokens to a grid.
ReshapeTransform = Callable[[torch.Tensor], torch.Tensor]

Normalization = Literal["minmax", "none"]
NORMALIZATIONS = get_args(Normalization)
#: As pytorch-grad-cam's ``scale_cam_image``: keeps an all-zero map at zero instead of NaN.
MINMAX_EPS = 1e-7


def _is_spatial(output: object) -> TypeGuard[torch.Tensor]:
    return isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-2] * output.shape[-1] > 1


class _Capture:
    """Forward hooks that record module outputs; removed on exit, also after an error.

    With ``copy`` the model continues on a copy of each recorded output, so an in-place op later
    in the forward (``F.relu(..., inplace=True)``, ``out += identity``) cannot change what the map
    is computed from; the gradient reaches the recorded tensor through the copy. Used for a named
    layer (one copy); the automatic search records every module and copies none."""

    def __init__(self, modules: dict[str, nn.Module], spatial_only: bool = True, copy: bool = False) -> None:
        self.modules = modules
        self.spatial_only = spatial_only
        self.copy = copy
        self.seen: list[tuple[str, object]] = []
        self.versions: dict[int, int] = {}  # id(output) -> its version counter when captured
        self._handles: list = []

    def _hook(self, name: str):
        def hook(module, inputs, output):
            capturable = _is_spatial(output) if self.spatial_only else isinstance(output, torch.Tensor)
            if capturable and output.is_floating_point() and not output.requires_grad:
                # A frozen model on a constant input builds no graph: make the activation a leaf
                # so the class score still has a gradient with respect to it. Nothing upstream
                # needs a gradient, so no path is cut. The model continues on a copy, so an
                # in-place op after this layer (ReLU(inplace=True)) neither hits the leaf nor
                # changes the captured values.
                leaf = output.detach().requires_grad_()
                self.seen.append((name, leaf))
                return leaf.clone()
            self.seen.append((name, output))
            if isinstance(output, torch.Tensor):
                self.versions[id(output)] = output._version
                if capturable and self.copy:
                    return output.clone()
            return None

        return hook

    def __enter__(self) -> _Capture:
        try:
            for name, module in self.modules.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def resolve_layer(model: nn.Module, layer: LayerSpec) -> dict[str, nn.Module]:
    """Map of name → module to hook: one module, or every module for automatic discovery."""
    inner = unwrap(model)
    if layer is None:
        return {name or "<model>": m for name, m in inner.named_modules()}
    if isinstance(layer, str):
        try:
            return {layer: inner.get_submodule(layer)}
        except AttributeError:
            names = [n for n, _ in inner.named_children()]
            raise ValueError(
                f"layer={layer!r} does not exist in {type(inner).__name__}; its top-level modules are {names}"
            ) from None
    if isinstance(layer, nn.Module):
        for name, m in inner.named_modules():
            if m is layer:
                return {name or "<model>": m}
        raise ValueError(f"layer {type(layer).__name__} is not a submodule of {type(inner).__name__}")
    raise TypeError(f"layer must be None, a dotted name or an nn.Module, got {type(layer).__name__}")


def _pick_activation(
    capture: _Capture, layer: LayerSpec, reshape_transform: ReshapeTransform | None = None
) -> tuple[str, torch.Tensor]:
    if layer is None:
        spatial = [(name, out) for name, out in capture.seen if _is_spatial(out)]
        if not spatial:
            shapes = [f"{name}: {tuple(out.shape)}" for name, out in capture.seen if isinstance(out, torch.Tensor)]
            raise ValueError(
                "no spatial layer found: Grad-CAM needs a module whose output is (B, K, h, w) with "
                f"h*w > 1. Module outputs seen: {shapes[-12:]}. Pass layer= explicitly."
            )
        return spatial[-1]
    (name,) = capture.modules
    if not capture.seen:
        raise ValueError(f"layer {name!r} did not run in the model's forward pass")
    _, out = capture.seen[-1]
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"layer {name!r} must output a tensor, got {type(out).__name__}")
    shaped = reshape_transform(out) if reshape_transform is not None else out
    if not isinstance(shaped, torch.Tensor) or shaped.dim() != 4:
        got = tuple(shaped.shape) if isinstance(shaped, torch.Tensor) else type(shaped).__name__
        hint = "" if reshape_transform is not None else "; pass reshape_transform= for token or other non-image layouts"
        raise ValueError(
            f"layer {name!r} must output a 4-D (B, K, h, w) tensor{' after reshape_transform' if reshape_transform else ''}, got {got}{hint}"
        )
    return name, out


def _modified(capture: _Capture, activation: torch.Tensor) -> bool:
    return capture.versions.get(id(activation), activation._version) != activation._version


def _buffers_snapshot(model: nn.Module) -> Callable[[], None]:
    """A function that puts every buffer (BatchNorm statistics) back as it is now."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]

    def restore() -> None:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)

    return restore


#: Models whose automatically found layer is modified in place after it (torchvision's DenseNet
#: applies F.relu(..., inplace=True) to its features): later calls hook that layer by name, with a
#: copy, straight away.
_MODIFIED_AFTER: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()


def _forward(model, x, modules, reshape_transform, copy):
    with modes_restored(model), _Capture(modules, spatial_only=reshape_transform is None, copy=copy) as capture:
        logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model must return (B, C) logits, got {got}")
    return logits, capture


def _resolve_target(
    target: TargetSpec, logits: torch.Tensor, y: torch.Tensor | None, check_range: bool
) -> torch.Tensor:
    name = "target"
    batch, classes = logits.shape
    if isinstance(target, str):
        if target == "predicted":
            return logits.detach().argmax(-1)
        if target == "label":
            if y is None:
                raise ValueError('target="label" needs the labels: pass y=')
            target, name = y, "y"
        else:
            raise ValueError(f'target must be a LongTensor, "label" or "predicted", got {target!r}')
    return _validate.check_labels(target, batch, classes if check_range else None, name).to(logits.device)


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    target: TargetSpec = "predicted",
    *,
    y: torch.Tensor | None = None,
    layer: LayerSpec = None,
    normalize: Normalization = "minmax",
    create_graph: bool = True,
    output_size: OutputSize = None,
    reshape_transform: ReshapeTransform | None = None,
    check_finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Differentiable Grad-CAM maps and the logits of the same forward pass.

    .. math::
        g = \frac{\partial \sum_b z_{b, t_b}}{\partial A}, \quad
        \alpha_{b,k} = \operatorname{mean}_{h,w} g_{b,k}, \quad
        \mathrm{CAM}_b = \operatorname{ReLU}\Big(\sum_k \alpha_{b,k} A_{b,k}\Big)

    then bilinear upsampling and per-sample min–max scaling to [0, 1].

    Args:
        model: a classifier returning (B, C) logits; DataParallel/DDP wrappers are fine. Its
            train/eval mode is used as is, and left as it was.
        x: (B, 3, H, W) input batch.
        target: (B,) class indices, ``"label"`` (uses ``y``) or ``"predicted"`` (argmax of the
            logits).
        layer: the feature module: ``None`` picks the last (B, K, h, w) output with h·w > 1 seen
            in the forward pass; a module or a dotted name (``"layer4"``) selects one. The map is
            computed from the layer's output as the layer returned it, also where the network
            later modifies that tensor in place (the network goes on with a copy; where the
            automatic search finds such a layer, that model's forward runs once more with the
            layer named, from the same BatchNorm statistics, and later calls name it directly).
        normalize: ``"minmax"`` (per sample, as pytorch-grad-cam) or ``"none"``.
        create_graph: keep the map differentiable (w.r.t. parameters and ``x``). With False the
            map is detached.
        output_size: ``None`` upsamples to the input's (H, W); ``(h, w)`` to that size;
            ``"layer"`` keeps the layer's resolution.
        y: labels for ``target="label"``.
        reshape_transform: maps the named ``layer``'s activation to (B, K, h, w), as in
            pytorch-grad-cam: e.g. a vision transformer's (B, 1 + h·w, K) tokens to a grid by
            dropping the class token, ``t[:, 1:].reshape(B, h, w, K).permute(0, 3, 1, 2)``. It is
            applied to the activation and to its gradient alike, so it must be a reshape or
            permutation. Needs a named ``layer``, inside the stack (after the last attention only
            the class token reaches the head). Training through the map is a double backward,
            which torch's fused attention kernels lack: run it under
            ``torch.nn.attention.sdpa_kernel(SDPBackend.MATH)``.
        check_finite: check that ``x`` is finite and the target classes are in range (one
            device sync each); False skips both.

    Returns:
        ``(logits, maps)``: logits (B, C) of the forward pass, maps (B, H', W') in float32
        (float64 for a float64 model).

    Example:
        >>> from torchvision.models import resnet18
        >>> logits, maps = grad_cam(resnet18(num_classes=10), torch.rand(2, 3, 64, 64), "predicted")
        >>> maps.shape
        torch.Size([2, 64, 64])

    Reference: Selvaraju et al., "Grad-CAM", ICCV 2017; its use for alignment: Yin et al.,
    CVPR 2024 (SmaraAD); docs/method.md §3.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    _validate.check_tensor(x, "x")
    if x.dim() != 4:
        raise ValueError(f"x must be a (B, C, H, W) image batch, got shape {tuple(x.shape)}")
    if check_finite:
        _validate.check_finite(x, "x")
    _validate.check_choice(normalize, "normalize", NORMALIZATIONS)
    size = _output_size(output_size, x)
    if reshape_transform is not None and (layer is None or not callable(reshape_transform)):
        raise ValueError(
            "reshape_transform needs a named layer= (the automatic choice looks for 4-D outputs) "
            f"and must be callable, got layer={layer!r}, reshape_transform={reshape_transform!r}"
        )

    if layer is None and unwrap(model) in _MODIFIED_AFTER:
        layer = _MODIFIED_AFTER[unwrap(model)]
    modules = resolve_layer(model, layer)
    # Grad-CAM needs a graph even when the caller is under no_grad (evaluation): build one here
    # and hand back detached results in that case.
    caller_tracks_grad = torch.is_grad_enabled()
    with torch.enable_grad():
        # The automatic search may have to run the forward again: keep the statistics to undo.
        restore_buffers = _buffers_snapshot(model) if layer is None else None
        logits, capture = _forward(model, x, modules, reshape_transform, copy=layer is not None)
        name, activation = _pick_activation(capture, layer, reshape_transform)
        if _modified(capture, activation):
            # Only the automatic search gets here (a named layer is copied): the layer it found was
            # changed in place later in the forward. Run again with that layer named, from the
            # same BatchNorm statistics, so the model's buffers see one forward.
            _MODIFIED_AFTER[unwrap(model)] = name
            assert restore_buffers is not None  # set on the automatic search, the only way here
            restore_buffers()
            logits, capture = _forward(model, x, resolve_layer(model, name), reshape_transform, copy=True)
            name, activation = _pick_activation(capture, name, reshape_transform)
        t = _resolve_target(target, logits, y, check_finite)

        score = logits.gather(1, t[:, None]).sum()
        (grads,) = torch.autograd.grad(score, activation, create_graph=create_graph and caller_tracks_grad)
        if reshape_transform is not None:
            activation, grads = reshape_transform(activation), reshape_transform(grads)
        # At least float32, also under bfloat16 autocast; float64 stays float64.
        dtype = torch.promote_types(activation.dtype, torch.float32)
        weights = grads.to(dtype).mean(dim=(2, 3), keepdim=True)
        cams = F.relu((weights * activation.to(dtype)).sum(1))
    if not (create_graph and caller_tracks_grad):
        cams = cams.detach()
    if not caller_tracks_grad:
        logits = logits.detach()
    if size is not None and tuple(cams.shape[-2:]) != size:
        cams = F.interpolate(cams[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    if normalize == "minmax":
        cams = minmax_scale(cams)
    return logits, cams


class GradCAM(nn.Module):
    r"""Module form of :func:`grad_cam`: stores the settings, takes the model per call.

    Args:
        layer, normalize, create_graph, output_size, reshape_transform, check_finite: as in
            :func:`grad_cam` (the layer is held as a plain attribute, never as a submodule).

    Shape:
        - model: a module mapping (B, 3, H, W) to (B, C) logits; x: (B, 3, H, W).
        - target: (B,) class indices, ``"label"`` (with ``y=``) or ``"predicted"``.
        - Output: ``(logits, maps)``, (B, C) and (B, H', W').

    Example:
        >>> cam = GradCAM(output_size="layer")
        >>> logits, maps = cam(cnn, torch.rand(2, 3, 8, 8), "predicted")
        >>> maps.shape
        torch.Size([2, 4, 4])
    """

    layer: LayerSpec

    def __init__(
        self,
        *,
        layer: LayerSpec = None,
        normalize: Normalization = "minmax",
        create_graph: bool = True,
        output_size: OutputSize = None,
        reshape_transform: ReshapeTransform | None = None,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        _validate.check_choice(normalize, "normalize", NORMALIZATIONS)
        object.__setattr__(self, "layer", layer)  # keep a layer module out of parameters()
        self.normalize, self.create_graph, self.output_size = normalize, create_graph, output_size
        self.reshape_transform, self.check_finite = reshape_transform, check_finite

    def forward(
        self, model: nn.Module, x: torch.Tensor, target: TargetSpec = "predicted", *, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return grad_cam(
            model,
            x,
            target,
            y=y,
            layer=self.layer,
            normalize=self.normalize,
            create_graph=self.create_graph,
            output_size=self.output_size,
            reshape_transform=self.reshape_transform,
            check_finite=self.check_finite,
        )

    def extra_repr(self) -> str:
        return f"normalize={self.normalize!r}, output_size={self.output_size!r}"


def minmax_scale(maps: torch.Tensor) -> torch.Tensor:
    """Per-sample (m − min) / (max − min + 1e-7), as pytorch-grad-cam's ``scale_cam_image``."""
    flat = maps.flatten(1)
    low = flat.min(1).values[:, None, None]
    shifted = maps - low
    return shifted / (shifted.flatten(1).max(1).values[:, None, None] + MINMAX_EPS)


def _output_size(output_size: OutputSize, x: torch.Tensor) -> tuple[int, int] | None:
    if output_size is None:
        return (int(x.shape[-2]), int(x.shape[-1]))
    if output_size == "layer":
        return None
    if (
        isinstance(output_size, (tuple, list))
        and len(output_size) == 2
        and all(isinstance(s, int) and s > 0 for s in output_size)
    ):
        return (int(output_size[0]), int(output_size[1]))
    raise ValueError(f'output_size must be None, "layer" or (h, w) positive ints, got {output_size!r}')


def _check_alignment_settings(target: object, normalize: object, reduction: object, output_size: object) -> str:
    _validate.check_choice(target, "target", get_args(CAMTarget))
    _validate.check_choice(normalize, "normalize", NORMALIZATIONS)
    if output_size == "layer":
        raise ValueError('output_size="layer" cannot align maps of two models: give None or (h, w)')
    return _validate.check_reduction(reduction)


class AlignmentResult(NamedTuple):
    """What :func:`attribution_alignment_loss` returns: the loss and both forwards' logits."""

    loss: torch.Tensor
    student_logits: torch.Tensor
    teacher_logits: torch.Tensor


# 0.1's teacher_differentiable=v is 0.2's detach_teacher=not v, the name every loss uses.
_accepts_teacher_differentiable = _deprecation.renamed_keywords(
    teacher_differentiable="detach_teacher", inverted=("teacher_differentiable",)
)


@_accepts_teacher_differentiable
def attribution_alignment_loss(
    student: nn.Module,
    teacher: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    student_layer: LayerSpec = None,
    teacher_layer: LayerSpec = None,
    target: CAMTarget = "label",
    normalize: Normalization = "minmax",
    reduction: str = "mean",
    detach_teacher: bool = True,
    output_size: OutputSize = None,
    student_reshape_transform: ReshapeTransform | None = None,
    teacher_reshape_transform: ReshapeTransform | None = None,
    check_finite: bool = True,
) -> AlignmentResult:
    r"""MSE between the Grad-CAM maps of a student and a teacher on the same input.

    .. math::
        \mathcal{L}_{align} = \operatorname{MSE}\big(\mathrm{CAM}_S(x), \mathrm{CAM}_T(x)\big)

    Both maps are upsampled to a common size (the input's, by default) before the MSE, so a
    4×4 student layer and an 8×8 teacher layer compare fine. The student map keeps its graph, so
    the loss trains the student's parameters (double backward). The teacher map is detached
    unless ``detach_teacher=False``, which keeps its dependence on ``x`` (needed when the loss
    is maximised over ``x``). The teacher runs in eval mode (its mode restored after), so its
    BatchNorm statistics are never updated; the student runs in the mode it is in.

    Args:
        student, teacher: classifiers returning (B, C) logits.
        x: (B, 3, H, W) inputs.
        y: (B,) labels, needed for ``target="label"``.
        student_layer, teacher_layer: as ``layer`` of :func:`grad_cam`.
        target: ``"label"`` (the true class ``y``, default) or ``"predicted"`` (the teacher's
            predicted class, for both maps).
        normalize: as in :func:`grad_cam`.
        reduction: ``"none"`` gives the per-sample MSE (B,), ``"mean"`` its mean (equal to
            ``F.mse_loss``), ``"sum"`` its sum.
        detach_teacher: treat the teacher's map and logits as constants (default True); False
            keeps their graph w.r.t. the input (0.1: ``teacher_differentiable=True``).
        output_size: the common map size; ``None`` is the input's (H, W).
        student_reshape_transform, teacher_reshape_transform: as ``reshape_transform`` of
            :func:`grad_cam`, for transformer students or teachers.
        check_finite: as in :func:`grad_cam`.

    Returns:
        ``AlignmentResult(loss, student_logits, teacher_logits)``: the logits of the two
        Grad-CAM forwards (the teacher's detached unless ``detach_teacher=False``), so a caller
        needs no second forward for its other terms.

    Example:
        >>> loss, z_s, z_t = attribution_alignment_loss(cnn, cnn_teacher, images, labels)
        >>> loss.backward()

    Reference: Yin et al., CVPR 2024, attribution region alignment (docs/method.md §3).
    """
    reduction = _check_alignment_settings(target, normalize, reduction, output_size)
    if target == "label" and y is None:
        raise ValueError('target="label" needs the labels: pass y=')
    size = _output_size(output_size, x)
    with modes_restored(teacher):
        teacher.eval()
        z_t, cam_t = grad_cam(
            teacher,
            x,
            target,
            y=y,
            layer=teacher_layer,
            create_graph=not detach_teacher,
            reshape_transform=teacher_reshape_transform,
            check_finite=check_finite,
            normalize=normalize,
            output_size=size,
        )
    student_target: torch.Tensor = y if y is not None and target == "label" else z_t.detach().argmax(-1)
    z_s, cam_s = grad_cam(
        student,
        x,
        student_target,
        layer=student_layer,
        create_graph=True,
        reshape_transform=student_reshape_transform,
        check_finite=False,
        normalize=normalize,
        output_size=size,
    )
    if detach_teacher:
        cam_t, z_t = cam_t.detach(), z_t.detach()
    per_sample = (cam_s - cam_t).square().flatten(1).mean(1)
    return AlignmentResult(_validate.reduce(per_sample, reduction), z_s, z_t)


class AttributionAlignmentLoss(nn.Module):
    r"""Module form of :func:`attribution_alignment_loss`: stores its settings and returns what
    the function returns, ``AlignmentResult(loss, student_logits, teacher_logits)``, so that a caller's
    other terms reuse the two forwards.

    Args:
        student_layer, teacher_layer: as ``layer`` of :func:`grad_cam` (held as plain attributes,
            never as submodules: the loss has no parameters).
        target: ``"label"`` (default) or ``"predicted"`` (the teacher's class, for both maps).
        normalize: ``"minmax"`` (default) or ``"none"``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        detach_teacher: treat the teacher's map as a constant (default True).
        output_size: the common map size; ``None`` is the input's (H, W).
        student_reshape_transform, teacher_reshape_transform: for transformer models, see
            :func:`grad_cam`.
        check_finite: as in :func:`grad_cam`.

    Shape:
        - student, teacher: modules mapping (B, 3, H, W) to (B, C) logits.
        - x: (B, 3, H, W); y: (B,) integer labels (for ``target="label"``).
        - Output: ``AlignmentResult``: ``loss`` a scalar, or (B,) with ``reduction="none"``; both
          logits (B, C).

    Example:
        >>> loss_fn = AttributionAlignmentLoss()
        >>> loss, z_s, z_t = loss_fn(cnn, cnn_teacher, images, labels)
        >>> loss.backward()
    """

    @_accepts_teacher_differentiable
    @_deprecation.keyword_only("student_layer", "teacher_layer", "target", "normalize", "reduction")
    def __init__(
        self,
        *,
        student_layer: LayerSpec = None,
        teacher_layer: LayerSpec = None,
        target: CAMTarget = "label",
        normalize: Normalization = "minmax",
        reduction: str = "mean",
        detach_teacher: bool = True,
        output_size: OutputSize = None,
        student_reshape_transform: ReshapeTransform | None = None,
        teacher_reshape_transform: ReshapeTransform | None = None,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        reduction = _check_alignment_settings(target, normalize, reduction, output_size)
        # Stored as plain attributes, never as submodules: the loss holds no parameters.
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.target = target
        self.normalize = normalize
        self.reduction = reduction
        self.detach_teacher = detach_teacher
        self.output_size = output_size
        self.student_reshape_transform = student_reshape_transform
        self.teacher_reshape_transform = teacher_reshape_transform
        self.check_finite = check_finite

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("student_layer", "teacher_layer"):
            # Keep layer modules out of this loss's parameters() and state_dict().
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def settings(self) -> dict:
        """The keyword arguments this module passes to :func:`attribution_alignment_loss`."""
        return dict(
            student_layer=self.student_layer,
            teacher_layer=self.teacher_layer,
            target=self.target,
            normalize=self.normalize,
            reduction=self.reduction,
            detach_teacher=self.detach_teacher,
            output_size=self.output_size,
            student_reshape_transform=self.student_reshape_transform,
            teacher_reshape_transform=self.teacher_reshape_transform,
            check_finite=self.check_finite,
        )

    def forward(
        self, student: nn.Module, teacher: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> AlignmentResult:
        return attribution_alignment_loss(student, teacher, x, y, **self.settings())

    def extra_repr(self) -> str:
        return f"target={self.target!r}, normalize={self.normalize!r}, reduction={self.reduction!r}"


__getattr__ = _deprecation.module_getattr(
    "softrank_ad.attribution",
    {"Alignment": ("softrank_ad.AlignmentResult (softrank_ad.terms.Alignment is the term)", lambda: AlignmentResult)},
)
