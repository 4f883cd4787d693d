"""Shapes and sizes of the attention U-Net."""

import pytest
import torch

from cryopick.unet import Architecture, AttentionUNet, architecture_parameters, count_parameters


@pytest.mark.parametrize("depth,width", [(1, 4), (2, 8), (3, 4), (4, 4)])
@pytest.mark.parametrize("size", [(32, 32), (37, 51), (64, 48)])
def test_output_has_input_size_and_one_channel_per_head(depth, width, size):
    torch.manual_seed(0)
    model = AttentionUNet(1, width, depth, ("mask", "centre")).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 1, *size))
    assert out.shape == (2, 2, *size)
    assert torch.isfinite(out).all()


def test_single_head_and_odd_tiny_input():
    model = AttentionUNet(1, 4, 3, ("mask",)).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 1, 9, 13))
    assert out.shape == (1, 1, 9, 13)


def test_every_skip_is_attention_gated_and_upsampling_is_bilinear():
    model = AttentionUNet(1, 4, 3)
    gates = [m for m in model.modules() if type(m).__name__ == "AttentionGate"]
    assert len(gates) == 3
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())


def test_paper_setting_has_131_million_parameters():
    # CryoSegNet: 5 levels of 64..1024 channels, bottleneck 2048 (counted on the meta device)
    n = architecture_parameters(Architecture(1, 64, 5, ("mask",)))
    assert 130e6 < n < 132e6


def test_small_default_is_about_two_million_parameters():
    model = AttentionUNet()
    assert model.architecture == Architecture(1, 16, 4, ("mask", "centre"))
    assert 1.9e6 < count_parameters(model) < 2.2e6
    # parameters grow with the square of the width
    wide = architecture_parameters(Architecture(1, 32, 4))
    assert 3.8 < wide / count_parameters(model) < 4.2


def test_architecture_round_trips_and_rejects_nonsense():
    arch = Architecture(1, 8, 3, ("centre", "mask"))
    assert Architecture.from_dict(arch.to_dict()) == arch
    with pytest.raises(ValueError, match="unknown U-Net head"):
        Architecture(heads=("mask", "banana"))
    with pytest.raises(ValueError, match="depth"):
        Architecture(depth=0)
