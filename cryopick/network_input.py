"""What the U-Net sees: a micrograph's canvas turned into the network's input.

Training and inference must prepare an image exactly alike, or a model meets at inference an
input it was never trained on; so both call the functions here and nothing else. A canvas is
either the denoised canvas of the denoise stage or the micrograph binned into that canvas's
frame (the model's ``input`` kind, stored in its checkpoint); it is normalised per image over
its content and resampled so that particles have the size the model was trained at.
"""

from __future__ import annotations

import cv2
import numpy as np

from cryopick.denoise import Frame, bin_to_frame, load_denoised, to_uint8
from cryopick.io import InputError, read_micrograph

INPUT_KINDS = ("binned", "denoised")


def normalise_image(image: np.ndarray, content: np.ndarray | None = None) -> np.ndarray:
    """uint8 canvas -> float32 with zero mean and unit std over the content; padding set to 0.

    Per-image statistics make the network indifferent to how each micrograph was stretched to
    8 bits."""
    image = np.asarray(image, dtype=np.float32)
    values = image[content] if content is not None else image
    mean, std = float(values.mean()), float(values.std())
    out = (image - mean) / (std if std > 1e-6 else 1.0)
    if content is not None:
        out[~content] = 0.0
    return out


def rescale_factor(diameter_px: float, model_diameter_px: float, tolerance: float = 0.05) -> float:
    """Factor that brings particles of ``diameter_px`` to the model's size (1 when close)."""
    factor = model_diameter_px / diameter_px
    return 1.0 if abs(factor - 1.0) <= tolerance else factor


def resize_canvas(image: np.ndarray, factor: float, interpolation=cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` resampled by ``factor`` (area averaging when shrinking a linear resample)."""
    if factor == 1.0:
        return image
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    if factor < 1 and interpolation == cv2.INTER_LINEAR:
        interpolation = cv2.INTER_AREA
    return cv2.resize(image, size, interpolation=interpolation)


def network_image(canvas: np.ndarray, content: np.ndarray | None, factor: float) -> np.ndarray:
    """The network's float32 input: ``canvas`` normalised over ``content``, then resampled by
    ``factor`` (model diameter / data diameter, see :func:`rescale_factor`)."""
    return resize_canvas(normalise_image(canvas, content), factor)


def binned_canvas(micrograph_path: str, frame: Frame, invert: bool = False) -> np.ndarray:
    """The "binned" network input: the micrograph binned into the frame's canvas and stretched
    to 8 bits, without the denoising chain (on already-filtered micrographs the chain removes
    much of what tells particles apart; the network learns its own filtering)."""
    image = read_micrograph(micrograph_path).image
    if image.shape != (frame.original_height, frame.original_width):
        raise InputError(f"{micrograph_path}: shape {image.shape} differs from its denoised "
                         f"frame ({frame.original_height}, {frame.original_width})")
    return to_uint8(bin_to_frame(-image if invert else image, frame), frame.content_mask)


def input_canvas(kind: str, denoised_path: str, micrograph_path: str | None = None,
                 invert: bool = False) -> tuple[np.ndarray, Frame]:
    """(uint8 network input, frame) of one micrograph for a model with input ``kind``."""
    denoised = load_denoised(denoised_path)
    if kind == "denoised":
        return denoised.image, denoised.frame
    if not micrograph_path:
        raise InputError(f"{denoised_path}: a U-Net with input 'binned' needs the micrograph "
                         "file, not only its denoised canvas")
    return binned_canvas(micrograph_path, denoised.frame, invert), denoised.frame
