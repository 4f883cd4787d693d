"""Segment Anything prompted on the U-Net probability map, as CryoSegNet does it.

CryoSegNet runs SAM's automatic mask generator (a grid of point prompts, filtered by predicted
IoU and stability, de-duplicated by box NMS) on the U-Net sigmoid map min-max scaled to uint8
and repeated to three channels: the map's particles are clean blobs on a flat background, which
SAM segments far more reliably than the raw micrograph. This module loads the model once,
turns a probability canvas into SAM's input, runs the generator and stores every mask
run-length encoded with its box, predicted IoU and stability score.

Mask files (``.json.gz``) hold, per mask, SAM's own record: ``bbox`` in SAM's XYWH convention
(x, y = first column/row of the mask; w, h = last minus first, so the mask spans w + 1 columns),
``area`` in pixels, ``predicted_iou``, ``stability_score``, the prompt ``point`` (x, y) and
``counts``: an uncompressed COCO run-length encoding of the mask in column-major order, runs
alternating background/foreground and starting with background (a leading 0 when the first
pixel is foreground). All coordinates are network-canvas pixels.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cryopick.device import resolve_device
from cryopick.io import InputError, atomic_path
from cryopick.probability_maps import load_probability
from cryopick.settings import check_choice, config_values

log = logging.getLogger(__name__)

MASKS_FORMAT = "cryopick-sam-masks/1"

# Image-encoder (embedding width, depth) of each model type: a checkpoint's shapes say which
# model it holds. "tiny" is the random-weight test model of build_tiny_sam, useless for picking.
TINY = dict(
    img_size=64, patch_size=8, embed_dim=48, depth=2, num_heads=2, window_size=4, prompt_dim=32
)
ENCODER_SHAPES = {
    "vit_b": (768, 12),
    "vit_l": (1024, 24),
    "vit_h": (1280, 32),
    "tiny": (TINY["embed_dim"], TINY["depth"]),
}
MODEL_TYPES = tuple(ENCODER_SHAPES)
CHECKPOINT_FILES = {  # the official checkpoints (https://github.com/facebookresearch/segment-anything)
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
}


def segment_anything():
    """Import segment_anything, with the pure-torch torchvision stand-in where needed."""
    from cryopick.torch_ops import ensure_torchvision

    ensure_torchvision()
    import segment_anything as sa

    return sa


@dataclass(frozen=True)
class SamSettings:
    """Model and automatic-mask-generator settings; defaults are CryoSegNet's (SAM's own)."""

    model_type: str = "vit_h"
    checkpoint: str = ""
    device: str = "auto"
    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0

    @classmethod
    def from_config(cls, config: dict) -> "SamSettings":
        settings = cls(**config_values(cls, config, "sam"))
        check_choice(settings.model_type, MODEL_TYPES, "sam.model_type")
        return settings

    def generator_kwargs(self) -> dict[str, Any]:
        skip = {"model_type", "checkpoint", "device"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


def checkpoint_available(checkpoint: str | os.PathLike | None) -> bool:
    """True when ``sam.checkpoint`` names an existing file (the SAM stage runs only then)."""
    return bool(checkpoint) and Path(checkpoint).is_file()


def unavailable_message(checkpoint: str | os.PathLike | None) -> str:
    """What the workflow says, once, when the SAM stage is skipped."""
    where = (
        f"sam.checkpoint ({checkpoint!s}) is not a file"
        if checkpoint
        else "sam.checkpoint is not set"
    )
    return (
        f"cryopick: the Segment Anything stage is skipped: {where}. Picks come from the other "
        f"stages. To use SAM, download {CHECKPOINT_FILES['vit_h']} (or the vit_l/vit_b "
        "checkpoint) from https://github.com/facebookresearch/segment-anything#model-checkpoints"
        " and set sam.checkpoint to its path and sam.model_type to its type."
    )


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------


def _build(model_type: str):
    sa = segment_anything()
    if model_type == "tiny":
        return _build_tiny(sa)
    return sa.sam_model_registry[model_type]()


def _build_tiny(sa):
    import torch

    encoder = sa.modeling.ImageEncoderViT(
        img_size=TINY["img_size"],
        patch_size=TINY["patch_size"],
        embed_dim=TINY["embed_dim"],
        depth=TINY["depth"],
        num_heads=TINY["num_heads"],
        mlp_ratio=2.0,
        out_chans=TINY["prompt_dim"],
        qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=TINY["window_size"],
        global_attn_indexes=(TINY["depth"] - 1,),
    )
    grid = TINY["img_size"] // TINY["patch_size"]
    prompt = sa.modeling.PromptEncoder(
        embed_dim=TINY["prompt_dim"],
        image_embedding_size=(grid, grid),
        input_image_size=(TINY["img_size"], TINY["img_size"]),
        mask_in_chans=4,
    )
    decoder = sa.modeling.MaskDecoder(
        num_multimask_outputs=3,
        transformer=sa.modeling.TwoWayTransformer(
            depth=2, embedding_dim=TINY["prompt_dim"], mlp_dim=64, num_heads=2
        ),
        transformer_dim=TINY["prompt_dim"],
        iou_head_depth=3,
        iou_head_hidden_dim=32,
    )
    return sa.modeling.Sam(
        image_encoder=encoder,
        prompt_encoder=prompt,
        mask_decoder=decoder,
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def build_tiny_sam(seed: int = 0):
    """A real SAM (segment_anything's own classes) at toy size with random weights, for tests.

    64 px input, 8 px patches, 2 encoder blocks: ~0.2 M parameters, a second per small image
    on a CPU. Its masks are meaningless; it exercises every code path of the real stage.
    """
    import torch

    torch.manual_seed(seed)
    model = _build("tiny")
    # rel-pos tables start at zero in SAM; give them values so a checkpoint round trip is real
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "rel_pos" in name:
                param.normal_(0, 0.02)
    return model.eval()


def save_tiny_sam_checkpoint(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write build_tiny_sam's weights as a plain state dict, like the official checkpoints."""
    import torch

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(build_tiny_sam(seed).state_dict(), tmp)
    return path


def checkpoint_model_type(state: dict[str, Any]) -> tuple[str | None, int, int]:
    """(model type or None, encoder width, encoder depth) read from a state dict's shapes."""
    key = "image_encoder.patch_embed.proj.weight"
    if key not in state:
        return None, 0, 0
    width = int(state[key].shape[0])
    blocks = {k.split(".")[2] for k in state if k.startswith("image_encoder.blocks.")}
    depth = len(blocks)
    for name, shape in ENCODER_SHAPES.items():
        if shape == (width, depth):
            return name, width, depth
    return None, width, depth


def _read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        try:  # mmap needs the zip format; old-style pickles load without it
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise InputError(f"{path}: checkpoint holds a {type(state).__name__}, not a state dict")
    return state


def load_sam(model_type: str, checkpoint: str | os.PathLike, device: Any = "cpu"):
    """Build the SAM of ``model_type`` with the weights of ``checkpoint``, on ``device``.

    The checkpoint's shapes are checked first, so that a vit_b file configured as vit_h says
    so in one line instead of a page of size mismatches. The model is built on the meta device
    and the weights assigned, so memory holds one copy of them (vit_h: 2.5 GB) and no time is
    spent on a random initialisation that would be overwritten.
    """
    import torch

    path = Path(checkpoint)
    if model_type == "default":
        model_type = "vit_h"
    check_choice(model_type, MODEL_TYPES, "sam.model_type")
    if not path.is_file():
        raise InputError(f"{path}: SAM checkpoint does not exist")
    state = _read_state_dict(path)
    found, width, depth = checkpoint_model_type(state)
    if width == 0:
        raise InputError(
            f"{path}: not a Segment Anything checkpoint (no image_encoder.patch_embed weights)"
        )
    if found != model_type:
        known = ", ".join(f"{k} {w}" for k, (w, _) in ENCODER_SHAPES.items() if k != "tiny")
        what = f"a {found} model" if found else "no known SAM model"
        raise InputError(
            f"{path}: checkpoint holds {what} (image-encoder width {width}, depth {depth}; "
            f"widths: {known}) but sam.model_type is {model_type!r}"
            + (f"; set sam.model_type: {found}" if found else "")
        )
    with torch.device("meta"):
        model = _build(model_type)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise InputError(
            f"{path}: weights do not fit a {model_type} SAM ({' '.join(first[:2])[:300]})"
        ) from exc
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise InputError(f"{path}: checkpoint lacks {', '.join(left[:5])}")
    return model.to(device).eval()


def make_generator(model, settings: SamSettings):
    """SAM's automatic mask generator with every setting from config; masks come back as RLE."""
    sa = segment_anything()
    return sa.SamAutomaticMaskGenerator(
        model, output_mode="uncompressed_rle", **settings.generator_kwargs()
    )


# ----------------------------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskRecord:
    """One SAM mask; coordinates in network-canvas pixels (see the module docstring)."""

    bbox: tuple[float, float, float, float]
    area: int
    predicted_iou: float
    stability_score: float
    point: tuple[float, float]
    counts: tuple[int, ...]
    size: tuple[int, int]  # (height, width) of the canvas

    def mask(self) -> np.ndarray:
        return rle_decode(self.counts, self.size)


def rle_encode(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO run lengths of a 2D mask, column-major, first run background."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat[0] else runs


def rle_decode(counts: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The boolean (height, width) mask of :func:`rle_encode`'s counts."""
    height, width = int(size[0]), int(size[1])
    counts = np.asarray(counts, dtype=np.int64)
    if int(counts.sum()) != height * width:
        raise ValueError(f"run lengths sum to {int(counts.sum())}, not {height}x{width}")
    values = (np.arange(counts.size) % 2).astype(bool)
    return np.repeat(values, counts).reshape(width, height).T


def sam_input_from_probability(probability: np.ndarray) -> np.ndarray:
    """CryoSegNet's SAM input: the map min-max scaled to 0..255, truncated to uint8 and
    repeated to HxWx3.

    A constant map has no structure to prompt on and becomes all zeros.
    """
    prob = np.asarray(probability, dtype=np.float32)
    lo, hi = float(prob.min()), float(prob.max())
    if hi <= lo:
        gray = np.zeros(prob.shape, dtype=np.uint8)
    else:
        gray = ((prob - lo) / (hi - lo) * 255).astype(np.uint8)  # truncation, as CryoSegNet
    return np.repeat(gray[:, :, None], 3, axis=2)


def generate_masks(generator, image: np.ndarray) -> list[MaskRecord]:
    """Run the generator on an HxWx3 uint8 image; an all-constant image gives no masks."""
    if image.size == 0 or int(image.max()) == int(image.min()):
        return []
    records = []
    for ann in generator.generate(image):
        rle = ann["segmentation"]
        records.append(
            MaskRecord(
                bbox=tuple(float(v) for v in ann["bbox"]),
                area=int(ann["area"]),
                predicted_iou=float(ann["predicted_iou"]),
                stability_score=float(ann["stability_score"]),
                point=tuple(float(v) for v in ann["point_coords"][0]),
                counts=tuple(int(c) for c in rle["counts"]),
                size=(int(rle["size"][0]), int(rle["size"][1])),
            )
        )
    return records


def save_masks(
    path: str | os.PathLike,
    records: Sequence[MaskRecord],
    size: Sequence[int],
    info: dict[str, Any] | None = None,
) -> None:
    """Write a gzipped JSON mask file (byte-stable: no timestamp in the gzip header)."""
    payload = {
        "format": MASKS_FORMAT,
        "size": [int(size[0]), int(size[1])],
        "info": info or {},
        "masks": [
            {
                "bbox": list(r.bbox),
                "area": r.area,
                "predicted_iou": r.predicted_iou,
                "stability_score": r.stability_score,
                "point": list(r.point),
                "counts": list(r.counts),
            }
            for r in records
        ],
    }
    data = json.dumps(payload, separators=(",", ":")).encode()
    with atomic_path(path) as tmp:
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle,
        ):
            handle.write(data)


def load_masks(path: str | os.PathLike) -> list[MaskRecord]:
    """Read a mask file written by :func:`save_masks`."""
    path = Path(path)
    try:
        with gzip.open(path, "rt") as handle:
            payload = json.load(handle)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable SAM mask file ({exc})") from exc
    if payload.get("format") != MASKS_FORMAT:
        raise InputError(f"{path}: not a {MASKS_FORMAT} file")
    size = (int(payload["size"][0]), int(payload["size"][1]))
    return [
        MaskRecord(
            bbox=tuple(m["bbox"]),
            area=int(m["area"]),
            predicted_iou=float(m["predicted_iou"]),
            stability_score=float(m["stability_score"]),
            point=tuple(m["point"]),
            counts=tuple(m["counts"]),
            size=size,
        )
        for m in payload["masks"]
    ]


def run_sam(
    probabilities: Sequence[str | os.PathLike],
    outputs: Sequence[str | os.PathLike],
    settings: SamSettings,
    threads: int | None = None,
) -> dict[str, Any]:
    """Load the model once, then write one mask file per probability map (zipped lists).

    Returns timings (seconds) so the caller can log them.
    """
    if len(probabilities) != len(outputs):
        raise InputError(f"{len(probabilities)} probability maps but {len(outputs)} mask outputs")
    import torch

    if not checkpoint_available(settings.checkpoint):
        raise InputError(unavailable_message(settings.checkpoint))
    if threads:
        torch.set_num_threads(int(threads))
    device = resolve_device(settings.device, "sam.device")
    start = time.perf_counter()
    model = load_sam(settings.model_type, settings.checkpoint, device)
    generator = make_generator(model, settings)
    load_s = time.perf_counter() - start
    log.info(
        "SAM %s from %s loaded on %s in %.1f s",
        settings.model_type,
        settings.checkpoint,
        device,
        load_s,
    )
    info = {
        "model_type": settings.model_type,
        "checkpoint": Path(settings.checkpoint).name,
        **settings.generator_kwargs(),
    }
    total = 0.0
    for src, dst in zip(probabilities, outputs):
        t0 = time.perf_counter()
        image = sam_input_from_probability(load_probability(src))
        records = generate_masks(generator, image)
        save_masks(dst, records, image.shape[:2], info)
        elapsed = time.perf_counter() - t0
        total += elapsed
        log.info("%s: %d masks in %.2f s on %s -> %s", src, len(records), elapsed, device, dst)
    return {"load_s": load_s, "generate_s": total, "device": str(device)}
