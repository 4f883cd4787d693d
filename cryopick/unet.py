"""Attention-gated U-Net (CryoSegNet's network), with depth and width as parameters.

CryoSegNet's model is ``depth=5, base_width=64`` (encoder 64..1024 channels, bottleneck 2048,
~131 M parameters): right for a GPU, far too slow on a CPU. The same code builds the small
default (``depth=4, base_width=16``, ~2 M parameters) that runs on a laptop.

Structure per CryoSegNet: each encoder level is two conv3x3+BN+ReLU then 2x2 max-pool; the
bottleneck doubles the width; each decoder level upsamples bilinearly (no transposed
convolution), gates the skip connection with an additive attention gate
(``sigmoid(psi(relu(W_g g + W_s s))) * s``), concatenates and applies two conv3x3+BN+ReLU. A 1x1
convolution gives one logit map per head. Heads besides the particle ``mask`` (e.g. a ``centre``
heat-map) share the whole network and cost one extra 1x1 output channel each.

Sizes that are not multiples of ``2**depth`` are handled by upsampling to the skip's exact size,
so any input size works and the output always has the input's size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

KNOWN_HEADS = ("mask", "centre")
# Expected fraction of positive target mass per head: the output bias starts at its logit so
# that training does not spend its first steps learning that most pixels are background.
HEAD_PRIORS = {"mask": 0.3, "centre": 0.03}


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the network; stored in every checkpoint."""

    in_channels: int = 1
    base_width: int = 16
    depth: int = 4
    heads: tuple[str, ...] = ("mask", "centre")

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"U-Net depth must be >= 1, got {self.depth}")
        if self.base_width < 1 or self.in_channels < 1:
            raise ValueError("U-Net base_width and in_channels must be >= 1")
        heads = tuple(self.heads)
        if not heads or len(set(heads)) != len(heads):
            raise ValueError(f"U-Net heads must be distinct and non-empty, got {heads}")
        unknown = [h for h in heads if h not in KNOWN_HEADS]
        if unknown:
            raise ValueError(f"unknown U-Net head(s) {unknown}; known: {list(KNOWN_HEADS)}")
        object.__setattr__(self, "heads", heads)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["heads"] = list(self.heads)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Architecture":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "heads" in known:
            known["heads"] = tuple(known["heads"])
        return cls(**known)


class DoubleConv(nn.Module):
    """Two conv3x3 + BatchNorm + ReLU (the building block of every level)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class AttentionGate(nn.Module):
    """Additive attention: weights each skip pixel by how relevant the coarser signal finds it."""

    def __init__(self, gate_channels: int, skip_channels: int, inter_channels: int):
        super().__init__()
        self.w_gate = nn.Sequential(
            nn.Conv2d(gate_channels, inter_channels, 1), nn.BatchNorm2d(inter_channels)
        )
        self.w_skip = nn.Sequential(
            nn.Conv2d(skip_channels, inter_channels, 1), nn.BatchNorm2d(inter_channels)
        )
        self.psi = nn.Conv2d(inter_channels, inter_channels, 1)

    def forward(self, gate: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        attention = torch.sigmoid(self.psi(F.relu(self.w_gate(gate) + self.w_skip(skip))))
        return attention * skip


class DecoderLevel(nn.Module):
    """Bilinear upsampling to the skip's size, attention-gated skip, concatenation, DoubleConv."""

    def __init__(self, in_channels: int, skip_channels: int):
        super().__init__()
        self.gate = AttentionGate(in_channels, skip_channels, skip_channels)
        self.conv = DoubleConv(in_channels + skip_channels, skip_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, self.gate(x, skip)], dim=1))


class AttentionUNet(nn.Module):
    """Attention-gated U-Net returning logits of shape (N, len(heads), H, W)."""

    def __init__(
        self,
        in_channels: int = 1,
        base_width: int = 16,
        depth: int = 4,
        heads: tuple[str, ...] | list[str] = ("mask", "centre"),
    ):
        super().__init__()
        self.architecture = Architecture(in_channels, base_width, depth, tuple(heads))
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList()
        channels = in_channels
        for width in widths[:-1]:
            self.encoder.append(DoubleConv(channels, width))
            channels = width
        self.bottleneck = DoubleConv(widths[-2], widths[-1])
        self.decoder = nn.ModuleList(
            DecoderLevel(widths[level + 1], widths[level]) for level in reversed(range(depth))
        )
        self.output = nn.Conv2d(widths[0], len(self.architecture.heads), 1)
        if not self.output.bias.is_meta:
            with torch.no_grad():
                for i, head in enumerate(self.architecture.heads):
                    prior = HEAD_PRIORS[head]
                    self.output.bias[i] = float(torch.logit(torch.tensor(prior)))

    @property
    def heads(self) -> tuple[str, ...]:
        return self.architecture.heads

    @classmethod
    def from_architecture(cls, architecture: Architecture) -> "AttentionUNet":
        return cls(
            architecture.in_channels,
            architecture.base_width,
            architecture.depth,
            architecture.heads,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
            x = F.max_pool2d(x, 2) if min(x.shape[-2:]) >= 2 else x
        x = self.bottleneck(x)
        for level, skip in zip(self.decoder, reversed(skips)):
            x = level(x, skip)
        return self.output(x)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (works on the meta device, so huge models cost nothing)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def architecture_parameters(architecture: Architecture) -> int:
    """Parameter count of an architecture without allocating its weights."""
    with torch.device("meta"):
        model = AttentionUNet.from_architecture(architecture)
    return count_parameters(model)
