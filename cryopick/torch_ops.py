"""Pure-torch stand-ins for the few torchvision operations that segment_anything imports.

segment_anything imports ``torchvision.ops.boxes.batched_nms``/``box_area`` and
``torchvision.transforms.functional.resize``/``to_pil_image`` at module level. The PyPI
torchvision wheel does not import next to a CPU-only torch build (``operator torchvision::nms
does not exist``), which would make the whole SAM stage unusable there. :func:`ensure_torchvision`
installs a minimal ``torchvision`` module tree holding the functions below, but only when the
real torchvision cannot be imported; where it imports, it is used unchanged.

Semantics follow torchvision: boxes are ``(x1, y1, x2, y2)``; NMS visits boxes by decreasing
score (ties: lower index first, as torchvision's stable CPU sort), keeps a box and drops every
later box whose IoU with it is strictly greater than the threshold; the result holds the kept
indices by decreasing score.
"""

from __future__ import annotations

import importlib.machinery
import logging
import sys
import types
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

SHIM_ATTRIBUTE = "__cryopick_shim__"


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of ``(x1, y1, x2, y2)`` boxes (no +1: coordinates are continuous)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _greedy_nms(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, categories: torch.Tensor | None
) -> torch.Tensor:
    """Greedy NMS; boxes of different categories never suppress each other.

    The "IoU above threshold" relation is computed in blocks of rows on the boxes' device
    (at most ~4 M pairs at a time, so memory stays bounded for any N) and the sequential
    greedy pass runs over those boolean rows on the CPU, as torchvision's CUDA kernel does.
    """
    n = int(boxes.shape[0])
    if n == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = boxes[order]
    areas = box_area(boxes)
    cats = categories[order] if categories is not None else None
    removed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    block = max(16, min(1024, 4_000_000 // n))
    for start in range(0, n, block):
        stop = min(n, start + block)
        rows, cols = boxes[start:stop, None, :], boxes[None, start:, :]
        wh = (
            torch.minimum(rows[..., 2:], cols[..., 2:])
            - torch.maximum(rows[..., :2], cols[..., :2])
        ).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
        iou = inter / (areas[start:stop, None] + areas[None, start:] - inter)
        # "greater than" is False for a NaN IoU (two empty boxes), which then suppress
        # nothing, exactly as in torchvision.
        over = iou > iou_threshold
        if cats is not None:
            over &= cats[start:stop, None] == cats[None, start:]
        over = over.cpu().numpy()
        for r in range(stop - start):
            i = start + r
            if removed[i]:
                continue
            keep.append(i)
            removed[start:] |= over[r]
    return order[torch.as_tensor(keep, dtype=torch.int64, device=order.device)]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision.ops.nms in pure torch: indices of kept boxes by decreasing score."""
    return _greedy_nms(boxes, scores, float(iou_threshold), None)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """torchvision.ops.batched_nms in pure torch: NMS within each category of ``idxs``.

    Compares categories directly instead of torchvision's coordinate-offset trick, so it is
    exact for any coordinates (the trick assumes non-negative boxes).
    """
    return _greedy_nms(boxes, scores, float(iou_threshold), idxs.to(boxes.device))


def to_pil_image(pic, mode: str | None = None):
    """The HxW or HxWxC uint8 numpy case of torchvision's to_pil_image (what SAM passes)."""
    from PIL import Image

    if isinstance(pic, torch.Tensor):
        pic = pic.detach().cpu().numpy()
        if pic.ndim == 3:
            pic = np.transpose(pic, (1, 2, 0))
    array = np.asarray(pic)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype != np.uint8:
        raise TypeError(f"cryopick's to_pil_image stand-in takes uint8 images, got {array.dtype}")
    return Image.fromarray(array, mode=mode) if mode else Image.fromarray(array)


def resize(img, size: Sequence[int] | int, interpolation=None, max_size=None, antialias=True):
    """torchvision's resize for a PIL image and an explicit (height, width): PIL bilinear.

    This is what torchvision itself does for PIL input (PIL's bilinear filter is always
    antialiased), so SAM sees the same pixels as with the real torchvision.
    """
    from PIL import Image

    if not isinstance(img, Image.Image):
        raise TypeError("cryopick's resize stand-in handles PIL images only (what SAM passes)")
    if isinstance(size, int) or len(size) != 2:
        raise TypeError("cryopick's resize stand-in needs an explicit (height, width)")
    height, width = int(size[0]), int(size[1])
    return img.resize((width, height), Image.Resampling.BILINEAR)


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    setattr(module, SHIM_ATTRIBUTE, True)
    for key, value in attributes.items():
        setattr(module, key, value)
    return module


def _drop_partial_torchvision() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def ensure_torchvision() -> bool:
    """Make ``import segment_anything`` work; return True if the real torchvision is used.

    Tries the real torchvision first. A failed import (missing, or the PyPI wheel that cannot
    register its operators with a CPU torch) leaves half-imported modules behind; they are
    removed and replaced by the pure-torch stand-ins of this module.
    """
    existing = sys.modules.get("torchvision")
    if existing is not None:
        return not getattr(existing, SHIM_ATTRIBUTE, False)
    try:
        import torchvision  # noqa: F401
        from torchvision.ops.boxes import batched_nms as _bn  # noqa: F401
        from torchvision.transforms.functional import resize as _rs  # noqa: F401

        return True
    except Exception as exc:  # ImportError, or RuntimeError from a mismatched wheel
        _drop_partial_torchvision()
        log.info(
            "torchvision unavailable (%s: %s); using cryopick's pure-torch stand-ins",
            type(exc).__name__,
            exc,
        )
    boxes = _module("torchvision.ops.boxes", batched_nms=batched_nms, nms=nms, box_area=box_area)
    ops = _module(
        "torchvision.ops", boxes=boxes, batched_nms=batched_nms, nms=nms, box_area=box_area
    )
    functional = _module(
        "torchvision.transforms.functional", resize=resize, to_pil_image=to_pil_image
    )
    transforms = _module("torchvision.transforms", functional=functional)
    root = _module("torchvision", ops=ops, transforms=transforms, __version__="0+cryopick")
    for module in (root, ops, boxes, transforms, functional):
        sys.modules[module.__name__] = module
    return False
