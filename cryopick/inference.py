"""U-Net inference: a batch of denoised canvases in, per-head probability maps out, then picks.

The model is loaded once per job and applied to a batch of micrographs (on a cluster the
start-up must not be paid per micrograph). Each canvas is normalised on its own and resampled
so that particles have the size the model was trained on (``diameter_px`` in the checkpoint);
the maps are resampled back, so everything downstream works on the denoised canvas and its
:class:`~cryopick.denoise.Frame`.

Picks are local maxima of the centre heat-map (``picks_from_score_map``): a centre map keeps one
peak per particle even where particles touch, where the mask probability merges them. A model
without a centre head falls back to peaks of the mask probability smoothed at the particle size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn

from cryopick.checkpoint import load_model
from cryopick.denoise import Frame, load_frame
from cryopick.device import describe_device, resolve_device
from cryopick.io import InputError, file_sha256
from cryopick.network_input import input_canvas, input_lowpass, network_image, rescale_factor
from cryopick.picking import picks_from_score_map
from cryopick.probability_maps import load_prediction, save_prediction
from cryopick.unet import AttentionUNet

SYMMETRIES = (
    (0, False),
    (2, False),
    (0, True),
    (2, True),
    (1, False),
    (3, False),
    (1, True),
    (3, True),
)  # (quarter turns, flip)


def _symmetric_probabilities(
    model: AttentionUNet, batch: torch.Tensor, symmetries: int
) -> torch.Tensor:
    """Mean sigmoid over the first ``symmetries`` of the square's 8 symmetries (test-time
    augmentation; 1 = the plain forward pass). Each transformed prediction is mapped back."""
    total = None
    for turns, flip in SYMMETRIES[:symmetries]:
        x = torch.rot90(batch, turns, dims=(-2, -1))
        if flip:
            x = torch.flip(x, dims=(-1,))
        prob = torch.sigmoid(model(x.contiguous(memory_format=torch.channels_last)).float())
        if flip:
            prob = torch.flip(prob, dims=(-1,))
        prob = torch.rot90(prob, -turns, dims=(-2, -1))
        total = prob if total is None else total + prob
    return total / symmetries


def content_box(shape: tuple[int, int], content: np.ndarray | None) -> tuple[slice, slice]:
    """Rows and columns of the canvas that hold the micrograph: the frame puts it at the
    top-left of the square canvas (cryopick.denoise.Frame); the whole canvas without a mask."""
    if content is None or not content.any():
        return slice(0, shape[0]), slice(0, shape[1])
    rows = np.flatnonzero(content.any(axis=1))
    cols = np.flatnonzero(content.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def predict(
    model: AttentionUNet,
    images: list[np.ndarray] | np.ndarray,
    contents: list[np.ndarray | None] | None = None,
    batch_size: int = 4,
    scale: float = 1.0,
    device: torch.device | str | None = None,
    symmetries: int = 1,
) -> list[dict]:
    """Probabilities of every head for each uint8 canvas: a list of {head: float32 (H, W)}.

    ``scale`` resamples each canvas before the network (model diameter / data diameter) and
    the maps back after it. Canvases are stacked ``batch_size`` at a time when they share a
    size; results do not depend on the batch size (eval-mode BatchNorm, per-image
    normalisation). ``symmetries`` > 1 averages over flipped/rotated copies (1, 2, 4 or 8).
    """
    if symmetries not in (1, 2, 4, 8):
        raise ValueError(f"symmetries must be 1, 2, 4 or 8, got {symmetries}")
    images = [np.asarray(im) for im in images]
    if contents is None:
        contents = [None] * len(images)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval().to(memory_format=torch.channels_last)
    # the network sees the content, not the padding of the square canvas: a 4096 x 512
    # micrograph costs an eighth of a square one, not the same (or more, once upsampled)
    boxes = [content_box(im.shape, c) for im, c in zip(images, contents)]
    prepared = [
        network_image(im[box], None if c is None else c[box], scale)
        for im, c, box in zip(images, contents, boxes)
    ]
    outputs: list[dict | None] = [None] * len(images)
    order = sorted(range(len(images)), key=lambda i: prepared[i].shape)
    batch_size = max(1, int(batch_size))
    i = 0
    with torch.inference_mode():
        while i < len(order):
            shape = prepared[order[i]].shape
            group = [order[i]]
            while (
                len(group) < batch_size
                and i + len(group) < len(order)
                and prepared[order[i + len(group)]].shape == shape
            ):
                group.append(order[i + len(group)])
            batch = torch.from_numpy(np.stack([prepared[j] for j in group]))[:, None].to(device)
            probs = _symmetric_probabilities(model, batch, symmetries).cpu().numpy()
            for k, j in enumerate(group):
                rows, cols = boxes[j]
                h, w = rows.stop - rows.start, cols.stop - cols.start
                maps = {}
                for c, head in enumerate(model.heads):
                    prob = probs[k, c]
                    if prob.shape != (h, w):
                        prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
                    full = np.zeros(images[j].shape, np.float32)
                    full[rows, cols] = prob
                    maps[head] = full
                outputs[j] = maps
            i += len(group)
    return outputs


def adapt_batchnorm(
    model: AttentionUNet,
    images: list[np.ndarray],
    contents: list[np.ndarray | None] | None = None,
    scale: float = 1.0,
) -> AttentionUNet:
    """A copy of ``model`` whose BatchNorm statistics are those of ``images`` (label-free
    adaptation, "AdaBN"): the weights are the trained ones, only the mean and variance each
    layer normalises by are measured on the user's own micrographs, as the network sees them
    (content box, normalisation, resampling by ``scale``). ``model`` itself is unchanged."""
    adapted = copy.deepcopy(model)
    layers = [m for m in adapted.modules() if isinstance(m, nn.BatchNorm2d)]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative mean over the images, whatever their order
    contents = [None] * len(images) if contents is None else contents
    device = next(adapted.parameters()).device
    adapted.eval()
    for layer in layers:
        layer.train()
    with torch.no_grad():
        for image, content in zip(images, contents):
            box = content_box(image.shape, content)
            x = network_image(image[box], None if content is None else content[box], scale)
            adapted(torch.from_numpy(x)[None, None].to(device))
    return adapted.eval()


def model_scale(checkpoint: dict, frame: Frame, diameter: float) -> float:
    """Resampling factor for a micrograph whose labelled/configured particle diameter is
    ``diameter`` file pixels (1 when within 5% of the model's training size)."""
    model_diameter = checkpoint.get("diameter_px")
    if not model_diameter:
        return 1.0
    return rescale_factor(diameter / frame.scale, float(model_diameter))


@dataclass(frozen=True)
class ModelInput:
    """One micrograph as a model sees it: the canvas, its frame, and the resampling
    (:func:`model_scale`) that :func:`predict` applies."""

    canvas: np.ndarray
    frame: Frame
    scale: float


def model_input(
    checkpoint: dict,
    denoised_path: str,
    micrograph_path: str | None,
    invert: bool,
    diameter_file_px: float,
) -> ModelInput:
    """The network input a checkpoint was trained on (its ``input`` kind and low-pass) at its
    particle size: one function for the workflow's maps, self-training and the benchmarks."""
    canvas, frame = input_canvas(
        checkpoint.get("input", "denoised"),
        str(denoised_path),
        None if micrograph_path is None else str(micrograph_path),
        invert,
        diameter_file_px,
        input_lowpass(checkpoint),
    )
    return ModelInput(canvas, frame, model_scale(checkpoint, frame, diameter_file_px))


def pick_score_map(prediction: dict[str, np.ndarray], diameter_px: float) -> np.ndarray:
    """The map whose peaks are particle centres: the centre head, else the smoothed mask."""
    if "centre" in prediction:
        return prediction["centre"]
    sigma = max(diameter_px / 6.0, 0.5)
    return cv2.GaussianBlur(prediction["mask"].astype(np.float32), (0, 0), sigma)


def picks_from_prediction(
    prediction: dict[str, np.ndarray], frame: Frame, diameter_px: float, *args, **kwargs
) -> pd.DataFrame:
    """Picks (file frame; score = peak height) from one micrograph's maps on the denoised
    canvas: :func:`cryopick.picking.picks_from_score_map` (threshold, min_distance,
    edge_margin, exclusion) on the map :func:`pick_score_map` chooses; ``diameter_px`` in canvas
    pixels, ``min_distance`` and ``edge_margin`` in diameters."""
    return picks_from_score_map(
        pick_score_map(prediction, diameter_px), frame, diameter_px, *args, **kwargs
    )


def stored_setting_picks(
    prediction: dict[str, np.ndarray],
    frame: Frame,
    diameter_file_px: float,
    picking: dict,
    threshold: float | None = None,
) -> pd.DataFrame:
    """Picks at a model's stored picking settings (its checkpoint's ``picking``: threshold,
    min distance, edge margin), or at ``threshold`` with the other two."""
    return picks_from_prediction(
        prediction,
        frame,
        diameter_file_px / frame.scale,
        picking["threshold"] if threshold is None else threshold,
        picking["min_distance"],
        picking["edge_margin"],
    )


# ----------------------------------------------------------------------------------------------
# files: what the workflow's rules call
# ----------------------------------------------------------------------------------------------


# Peak memory of a forward pass, measured on this project's U-Net (base width 16, inference
# mode, float32): 630-660 bytes per network pixel from 1024^2 to 2048^2 and batches of 1-4,
# 850 at 512^2; plus about 0.4 GB of torch and the model. Rounded up.
BYTES_PER_NETWORK_PIXEL = 700.0  # at base width 16, in proportion to the width
BASE_MEMORY_GB = 0.5


def network_memory_gb(frame: Frame, scale: float, base_width: int = 16) -> float:
    """Estimated memory of one micrograph's forward pass: its content resampled by ``scale``."""
    pixels = frame.content_height * frame.content_width * scale * scale
    return pixels * BYTES_PER_NETWORK_PIXEL * (base_width / 16.0) / 2**30


def memory_batch_size(
    frames_and_scales: list[tuple[Frame, float]],
    batch_size: int,
    max_memory_gb: float | None,
    base_width: int,
    what: str,
) -> int:
    """The batch size that keeps a U-Net job within ``max_memory_gb`` (None: no limit), from
    the estimate made before any forward pass; an InputError when one micrograph alone would
    not fit: its resampling is far off (a diameter in pixels where Angstrom are meant)."""
    if not max_memory_gb or not frames_and_scales:
        return batch_size
    frame, scale = max(frames_and_scales, key=lambda fs: network_memory_gb(*fs, base_width))
    need = network_memory_gb(frame, scale, base_width)
    room = max_memory_gb - BASE_MEMORY_GB
    if need > room:
        h, w = round(frame.content_height * scale), round(frame.content_width * scale)
        raise InputError(
            f"{what}: the U-Net would resample each micrograph {scale:.2f}x to {w} x {h} "
            f"pixels and need about {need + BASE_MEMORY_GB:.1f} GB, above unet.max_memory_gb "
            f"{max_memory_gb}; check particle_diameter (Angstrom, not pixels) and pixel_size"
        )
    return max(1, min(batch_size, int(room // need)))


def predict_files(
    model_path: str,
    denoised_paths: list[str],
    output_paths: list[str],
    diameter_angstrom: float,
    micrograph_paths: list[str] | None = None,
    invert: bool = False,
    device: str = "auto",
    batch_size: int = 4,
    threads: int | None = None,
    symmetries: int | None = None,
    log=print,
    max_memory_gb: float | None = None,
) -> str:
    """Load the model once, predict ``batch_size`` micrographs per forward pass and write one
    8-bit map file per micrograph (on the denoised canvas's frame). The network input is what
    the model was trained on: the micrograph binned into that frame ("binned", needs
    ``micrograph_paths``) or the denoised canvas. Returns the device used (also logged and
    stored in each file's metadata). ``symmetries`` None uses the test-time augmentation the
    model's picking settings were tuned with."""
    if len(denoised_paths) != len(output_paths) or (
        micrograph_paths is not None and len(micrograph_paths) != len(denoised_paths)
    ):
        raise ValueError("predict_files needs one output (and micrograph) per denoised file")
    if threads:
        torch.set_num_threads(int(threads))
    torch_device = resolve_device(device, "unet.device")
    model, checkpoint = load_model(model_path, device=torch_device)
    used = describe_device(torch_device)
    if symmetries is None:
        symmetries = int(checkpoint.get("picking", {}).get("symmetries", 1))
    kind = checkpoint.get("input", "denoised")
    lowpass = input_lowpass(checkpoint)
    log(
        f"U-Net {model_path} ({checkpoint['data']['sha256'][:12]}) on {used}; "
        f"{kind} input, {len(denoised_paths)} micrograph(s), batch size {batch_size}, "
        f"{symmetries} symmetr{'y' if symmetries == 1 else 'ies'} averaged"
    )
    metadata = {
        "model": str(model_path),
        "model_sha256": file_sha256(model_path),
        "model_data_sha256": checkpoint["data"]["sha256"],
        "device": used,
        "picking": checkpoint.get("picking", {}),
        "symmetries": symmetries,
        "input": kind,
        "input_lowpass": lowpass,
    }
    for start in range(0, len(denoised_paths), max(1, batch_size)):
        chunk = list(range(start, min(start + max(1, batch_size), len(denoised_paths))))
        # the particle diameter in each file's pixels (the denoise stage recorded the pixel size)
        diameters = [diameter_angstrom / load_frame(denoised_paths[i])[1] for i in chunk]
        inputs = [
            model_input(
                checkpoint,
                denoised_paths[i],
                micrograph_paths[i] if micrograph_paths else None,
                invert,
                diameter_px,
            )
            for i, diameter_px in zip(chunk, diameters)
        ]
        # micrographs of one data set share one scale; group in case they do not
        scales = [item.scale for item in inputs]
        fitting = memory_batch_size(
            [(item.frame, item.scale) for item in inputs],
            batch_size,
            max_memory_gb,
            model.architecture.base_width,
            f"particle_diameter {diameter_angstrom} A ({diameters[0]:.1f} px in "
            f"{micrograph_paths[chunk[0]] if micrograph_paths else denoised_paths[chunk[0]]})",
        )
        if fitting < batch_size and start == 0:
            log(f"batch size {fitting} instead of {batch_size}: unet.max_memory_gb {max_memory_gb}")
        for scale in sorted(set(scales)):
            members = [k for k, s in enumerate(scales) if s == scale]
            maps = predict(
                model,
                [inputs[k].canvas for k in members],
                [inputs[k].frame.content_mask for k in members],
                batch_size=fitting,
                scale=scale,
                device=torch_device,
                symmetries=symmetries,
            )
            for k, prediction in zip(members, maps):
                save_prediction(
                    output_paths[chunk[k]],
                    prediction,
                    inputs[k].frame,
                    {**metadata, "scale": scale},
                )
        log(f"predicted {chunk[-1] + 1}/{len(denoised_paths)}")
    return used


# picking settings of a model that carries none (checkpoints from before tuning was stored)
FALLBACK_PICKING = {"threshold": 0.5, "min_distance": 0.4, "edge_margin": 0.5}


def operating_point(
    tuned: dict,
    threshold: float | None = None,
    min_distance: float | None = None,
    edge_margin: float | None = None,
) -> dict[str, float]:
    """The picking settings inference uses: each configured value (``unet.threshold``,
    ``unet.min_distance``, ``unet.edge_margin``), else the one tuned on the model's validation
    micrographs (``tuned``, the checkpoint's ``picking``), else FALLBACK_PICKING."""
    configured = {"threshold": threshold, "min_distance": min_distance, "edge_margin": edge_margin}
    return {
        key: float(value if value is not None else tuned.get(key, FALLBACK_PICKING[key]))
        for key, value in configured.items()
    }


def pick_unet_file(
    prediction_path: str,
    denoised_path: str,
    output_path: str,
    diameter_angstrom: float,
    threshold: float | None = None,
    min_distance: float | None = None,
    edge_margin: float | None = None,
) -> pd.DataFrame:
    """Picks from one micrograph's U-Net maps, written as RELION STAR. Settings left at None
    take the values tuned on the model's validation micrographs (stored with the maps)."""
    from cryopick.io import write_star

    maps, frame, metadata = load_prediction(prediction_path, require=("frame",))
    settings = operating_point(metadata.get("picking", {}), threshold, min_distance, edge_margin)
    # the canvas's pixel size, from the frame alone (the canvas itself is not needed)
    canvas_frame, file_pixel_size = load_frame(denoised_path)
    diameter_px = diameter_angstrom / (file_pixel_size * canvas_frame.scale)
    picks = picks_from_prediction(maps, frame, diameter_px, **settings)
    write_star(output_path, picks)
    return picks
