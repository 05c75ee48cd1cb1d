"""grad_cam against its oracle, pytorch-grad-cam: raw and upsampled maps on three CNN naming
schemes, and a ViT through reshape_transform."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from test_attribution import TinyViT, small, tokens_to_grid

from softrank_ad import grad_cam


def oracle_maps(model, layer, x, targets):
    """pytorch-grad-cam's raw ReLU(Σ α A) maps (before its resize) and its final output."""
    cam = GradCAM(model=model, target_layers=[layer])
    final = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    acts = cam.activations_and_grads.activations[0].numpy()
    grads = cam.activations_and_grads.gradients[0].numpy()
    raw = np.maximum(cam.get_cam_image(x, layer, None, acts, grads), 0)
    cam.activations_and_grads.release()
    return raw, final


# The CIFAR ResNet-18's last block is "layer4"; the WRN's is "block3" (8×8), MobileNetV2 ends in
# "conv2"/"bn2": three naming schemes and two resolutions.
@pytest.mark.parametrize("name,layer_name", [("resnet18", "layer4"), ("wrn34_10", "block3"), ("mobilenet_v2", "bn2")])
def test_matches_pytorch_grad_cam(name, layer_name):
    model = small(name).eval()
    x = torch.rand(4, 3, 32, 32)
    targets = torch.tensor([0, 3, 7, 9])
    layer = model.get_submodule(layer_name)
    raw_oracle, final_oracle = oracle_maps(model, layer, x, targets)

    _, raw = grad_cam(model, x, targets, layer=layer_name, normalize="none", output_size="layer")
    np.testing.assert_allclose(raw.detach().numpy(), raw_oracle, rtol=1e-4, atol=1e-6)

    # After scaling. pytorch-grad-cam min-max normalises first and then resizes with cv2
    # (INTER_LINEAR); we upsample bilinearly (align_corners=False, the same sampling grid as cv2)
    # and then normalise, as docs/method.md §3 orders it. Bilinear upsampling never reproduces the peak of a
    # 4×4 map exactly, so its output tops out below 1 (up to ~15% here); the two differ by a
    # per-sample affine map only. Re-normalising the oracle's output removes exactly that and
    # leaves cv2's resize arithmetic, which differs from torch's by up to ~5e-4 here.
    _, final = grad_cam(model, x, targets, layer=layer)
    lo = final_oracle.min(axis=(1, 2), keepdims=True)
    renormalised = (final_oracle - lo) / ((final_oracle - lo).max(axis=(1, 2), keepdims=True) + 1e-7)
    np.testing.assert_allclose(final.detach().numpy(), renormalised, atol=1e-3)
    upsampled = np.stack([cv2.resize(np.float32(m), (32, 32)) for m in raw_oracle])
    np.testing.assert_allclose(
        final.detach().numpy(),
        (upsampled - upsampled.min(axis=(1, 2), keepdims=True))
        / (np.ptp(upsampled, axis=(1, 2), keepdims=True) + 1e-7),
        atol=1e-3,
    )


@pytest.mark.parametrize("frozen", [False, True])
def test_reshape_transform_matches_pytorch_grad_cam_on_a_vit(frozen):
    torch.manual_seed(0)
    model = TinyViT().eval()
    x, targets = torch.rand(2, 3, 32, 32), torch.tensor([1, 3])
    layer = model.blocks[0]
    cam = GradCAM(model=model, target_layers=[layer], reshape_transform=tokens_to_grid)
    cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    acts = cam.activations_and_grads.activations[0].numpy()
    grads = cam.activations_and_grads.gradients[0].numpy()
    oracle = np.maximum(cam.get_cam_image(x, layer, None, acts, grads), 0)
    cam.activations_and_grads.release()
    model.requires_grad_(not frozen)
    _, maps = grad_cam(
        model, x, targets, layer="blocks.0", reshape_transform=tokens_to_grid, normalize="none", output_size="layer"
    )
    assert maps.shape == (2, 4, 4) and (maps > 0).any()  # not a trivially all-zero comparison
    np.testing.assert_allclose(maps.detach().numpy(), oracle, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="reshape_transform needs a named layer"):
        grad_cam(model, x, targets, reshape_transform=tokens_to_grid)
    with pytest.raises(ValueError, match=r"layer 'blocks.0' must output a 4-D .*pass reshape_transform"):
        grad_cam(model, x, targets, layer="blocks.0")
