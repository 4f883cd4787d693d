"""Preview images of micrographs for the report: the denoised canvas the pickers saw, cropped to
the micrograph and scaled to fit a square of ``size`` pixels, with the exclusion mask shaded when
that stage runs. Made once per micrograph in the batched ``previews`` rule, so the report job
only copies the few it shows; the picks are drawn over them by the page (SVG), in the
micrograph file's pixel frame.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from cryopick.denoise import load_denoised
from cryopick.io import atomic_path

# excluded areas tinted this colour (RGB) at this opacity
EXCLUDED_TINT = (255, 140, 0)
EXCLUDED_ALPHA = 0.35
JPEG_QUALITY = 85


def stretch_contrast(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """The image's ``low``..``high`` percentiles spread over 0..255 (the denoised canvas is
    grey on grey at a thumbnail's size)."""
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        return image
    scaled = (image.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


def preview_image(
    canvas: np.ndarray, content: tuple[int, int], size: int, excluded: np.ndarray | None = None
) -> np.ndarray:
    """The content rows x columns of a uint8 canvas, scaled (never up) so that its longer side
    is ``size`` pixels; RGB with ``excluded`` (a canvas mask) tinted, greyscale without."""
    height, width = content
    image = stretch_contrast(np.asarray(canvas, np.uint8)[:height, :width])
    scale = min(1.0, size / max(height, width))
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    if scale < 1.0:
        image = cv2.resize(image, shape, interpolation=cv2.INTER_AREA)
    if excluded is None:
        return image
    mask = np.asarray(excluded, bool)[:height, :width].astype(np.uint8)
    if scale < 1.0:
        mask = cv2.resize(mask, shape, interpolation=cv2.INTER_NEAREST)
    rgb = np.repeat(image[..., None], 3, axis=2).astype(np.float32)
    tint = np.asarray(EXCLUDED_TINT, np.float32)
    rgb[mask > 0] = (1 - EXCLUDED_ALPHA) * rgb[mask > 0] + EXCLUDED_ALPHA * tint
    return rgb.round().astype(np.uint8)


def write_preview(
    denoised_path: str | os.PathLike,
    output_path: str | os.PathLike,
    size: int,
    exclusion_path: str | os.PathLike | None = None,
    classes: tuple[str, ...] | None = None,
) -> tuple[int, int]:
    """Write one micrograph's preview as JPEG; returns its (height, width)."""
    from PIL import Image

    denoised = load_denoised(denoised_path)
    excluded = None
    if exclusion_path is not None:
        from cryopick.exclusion import load_exclusion

        excluded = load_exclusion(exclusion_path).mask(classes)
    frame = denoised.frame
    image = preview_image(
        denoised.image, (frame.content_height, frame.content_width), size, excluded
    )
    with atomic_path(output_path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return image.shape[:2]
