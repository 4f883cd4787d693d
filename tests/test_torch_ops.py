"""The pure-torch NMS/box-area stand-ins against a plain numpy reference of torchvision's rules."""

import sys

import numpy as np
import pytest
import torch

from cryopick import torch_ops


def reference_nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, categories: np.ndarray
) -> list[int]:
    """Greedy NMS written out longhand: by decreasing score (ties: lower index first), drop
    later boxes of the same category whose IoU with a kept box is strictly above threshold."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for rank, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[rank + 1 :]:
            if categories[j] != categories[i]:
                continue
            x1, y1 = max(boxes[i, 0], boxes[j, 0]), max(boxes[i, 1], boxes[j, 1])
            x2, y2 = min(boxes[i, 2], boxes[j, 2]), min(boxes[i, 3], boxes[j, 3])
            inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
            area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
            area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
            if inter / (area_i + area_j - inter) > threshold:
                suppressed[j] = True
    return keep


def random_boxes(rng: np.random.Generator, n: int, integer: bool) -> np.ndarray:
    if integer:  # small integers: exact IoU ties with the threshold happen
        xy = rng.integers(0, 12, size=(n, 2))
        wh = rng.integers(1, 8, size=(n, 2))
    else:
        xy = rng.uniform(-20, 100, size=(n, 2))
        wh = rng.uniform(0.5, 40, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float64)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("integer", [False, True])
def test_batched_nms_matches_reference(seed: int, integer: bool) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    boxes = random_boxes(rng, n, integer)
    # few distinct score values, so that ties in score are common
    scores = rng.integers(0, 6, size=n).astype(np.float64) / 5
    categories = rng.integers(0, 3, size=n)
    threshold = float(rng.choice([0.0, 0.25, 0.5, 0.7]))
    expected = reference_nms(boxes, scores, threshold, categories)
    got = torch_ops.batched_nms(
        torch.tensor(boxes, dtype=torch.float32),
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(categories),
        threshold,
    )
    assert got.dtype == torch.int64
    assert got.tolist() == expected


def test_nms_single_category_matches_reference() -> None:
    rng = np.random.default_rng(99)
    boxes = random_boxes(rng, 300, integer=False)
    scores = rng.random(300)
    expected = reference_nms(boxes, scores, 0.3, np.zeros(300, dtype=int))
    got = torch_ops.nms(torch.tensor(boxes), torch.tensor(scores), 0.3)
    assert got.tolist() == expected
    assert 0 < len(expected) < 300


def test_nms_edge_cases() -> None:
    empty = torch.zeros((0, 4))
    assert torch_ops.nms(empty, torch.zeros(0), 0.5).tolist() == []
    # identical boxes: the higher score survives; equal scores: the lower index survives
    same = torch.tensor([[0.0, 0, 10, 10]] * 3)
    assert torch_ops.nms(same, torch.tensor([0.1, 0.9, 0.5]), 0.5).tolist() == [1]
    assert torch_ops.nms(same, torch.tensor([0.5, 0.5, 0.5]), 0.5).tolist() == [0]
    # IoU exactly at the threshold does not suppress (strictly greater suppresses)
    half = torch.tensor([[0.0, 0, 2, 1], [0.0, 0, 1, 1]])
    assert torch_ops.nms(half, torch.tensor([1.0, 0.5]), 0.5).tolist() == [0, 1]
    # empty (zero-area) boxes: IoU is 0/0 and suppresses nothing, as in torchvision
    degenerate = torch.zeros((2, 4))
    assert torch_ops.nms(degenerate, torch.tensor([1.0, 0.5]), 0.5).tolist() == [0, 1]
    # the same box in two categories is kept twice
    kept = torch_ops.batched_nms(same[:2], torch.tensor([1.0, 0.5]), torch.tensor([0, 1]), 0.5)
    assert kept.tolist() == [0, 1]


def test_box_area() -> None:
    boxes = torch.tensor([[0.0, 0, 2, 3], [1.5, 1, 2, 1], [-1, -1, 1, 1]])
    assert torch_ops.box_area(boxes).tolist() == [6.0, 0.0, 4.0]


def test_stand_in_lets_segment_anything_import() -> None:
    real = torch_ops.ensure_torchvision()
    import segment_anything  # noqa: F401
    from segment_anything.automatic_mask_generator import batched_nms

    if not real:
        assert getattr(sys.modules["torchvision"], torch_ops.SHIM_ATTRIBUTE)
        assert batched_nms is torch_ops.batched_nms
    # a second call changes nothing
    assert torch_ops.ensure_torchvision() == real


def test_resize_stand_in_is_pil_bilinear() -> None:
    from PIL import Image

    image = (np.arange(30 * 20 * 3) % 251).astype(np.uint8).reshape(30, 20, 3)
    out = np.asarray(torch_ops.resize(torch_ops.to_pil_image(image), (15, 10)))
    expected = np.asarray(Image.fromarray(image).resize((10, 15), Image.Resampling.BILINEAR))
    assert out.shape == (15, 10, 3)
    np.testing.assert_array_equal(out, expected)
