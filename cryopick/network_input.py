"""What the U-Net sees: a micrograph's canvas turned into the network's input.

Training and inference must prepare an image exactly alike, or a model meets at inference an
input it was never trained on; so both call the functions here and nothing else. A canvas is
the denoised canvas of the denoise stage, the micrograph binned into that canvas's frame, or
the micrograph normalised at the particle's scale (the model's ``input`` kind, stored in its
checkpoint); it is normalised per image over its content and resampled so that particles have
the size the model was trained at.
"""

from __future__ import annotations

import cv2
import numpy as np

from cryopick.denoise import Frame, bin_to_frame, load_denoised, to_uint8
from cryopick.io import InputError, read_micrograph

INPUT_KINDS = ("binned", "denoised", "normalised")
# The "normalised" input, in particle diameters: a Gaussian low-pass of this sigma (a model
# records its own as "input_lowpass"; this one is for models that predate the key), and a
# background (ice gradient, carbon, gain drift) estimated at this sigma and subtracted.
LOWPASS_SIGMA = 0.15
# what new models are trained with: 0.15 smooths away most of a particle's shape (4 network
# pixels on a 27 px particle); 0.06 held out scored +0.02 F1 on EMPIAR-10017 and +0.01-0.03 on
# raw synthetic micrographs (benchmarks/results/generality_session7_lp006_fold0.md)
NEW_MODEL_LOWPASS = 0.06
BACKGROUND_SIGMA = 2.0
CLIP_STD = 5.0  # robust standard deviations kept on either side (contamination, hot pixels)


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


def _binned(micrograph_path: str, frame: Frame, invert: bool) -> np.ndarray:
    """The micrograph binned into the frame's canvas (float32), particles dark."""
    image = read_micrograph(micrograph_path).image
    if image.shape != (frame.original_height, frame.original_width):
        raise InputError(
            f"{micrograph_path}: shape {image.shape} differs from its denoised "
            f"frame ({frame.original_height}, {frame.original_width})"
        )
    return bin_to_frame(-image if invert else image, frame)


def binned_canvas(micrograph_path: str, frame: Frame, invert: bool = False) -> np.ndarray:
    """The "binned" network input: the micrograph binned into the frame's canvas and stretched
    to 8 bits, without the denoising chain (on already-filtered micrographs the chain removes
    much of what tells particles apart; the network learns its own filtering)."""
    return to_uint8(_binned(micrograph_path, frame, invert), frame.content_mask)


def input_lowpass(checkpoint: dict) -> float:
    """The low-pass (particle diameters) of the "normalised" input a model was trained on."""
    return float(checkpoint.get("input_lowpass", LOWPASS_SIGMA))


def normalised_canvas(
    micrograph_path: str,
    frame: Frame,
    diameter_px: float,
    invert: bool = False,
    lowpass: float = LOWPASS_SIGMA,
) -> np.ndarray:
    """The "normalised" network input: what the network sees independent of pixel size,
    particle size, dose and of whether the file was filtered before it reached us.

    The micrograph is binned into the frame's canvas (the caller then resamples it so that a
    particle spans the model's diameter), turned so that particles are dark, low-passed at
    ``lowpass`` x the particle diameter (``diameter_px``, canvas pixels) so that raw
    shot noise and a denoising chain's texture both give way to particle-sized structure, has a
    smooth background of ``BACKGROUND_SIGMA`` diameters removed, and is scaled by its median
    absolute deviation (robust to contamination and empty areas) and clipped."""
    return normalise_particle_scale(
        _binned(micrograph_path, frame, invert), frame.content_mask, diameter_px, lowpass
    )


def normalise_particle_scale(
    canvas: np.ndarray, content: np.ndarray, diameter_px: float, lowpass: float = LOWPASS_SIGMA
) -> np.ndarray:
    """Low-pass, background removal and robust scaling of a canvas (see normalised_canvas);
    float32, 0 outside ``content``."""
    content = np.asarray(content, bool)
    values = canvas[content]
    image = np.where(content, canvas, np.median(values)).astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), max(lowpass * diameter_px, 0.5))
    image -= cv2.GaussianBlur(image, (0, 0), BACKGROUND_SIGMA * diameter_px)
    values = image[content]
    centre = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - centre)))
    image = np.clip((image - centre) / (spread if spread > 1e-12 else 1.0), -CLIP_STD, CLIP_STD)
    image[~content] = 0.0
    return image.astype(np.float32)


def input_canvas(
    kind: str,
    denoised_path: str,
    micrograph_path: str | None = None,
    invert: bool = False,
    diameter_file_px: float | None = None,
    lowpass: float = LOWPASS_SIGMA,
) -> tuple[np.ndarray, Frame]:
    """(network input, frame) of one micrograph for a model with input ``kind``: a uint8
    canvas ("binned", "denoised") or a float32 one ("normalised", which needs the particle
    diameter in the micrograph file's pixels, and the model's ``lowpass``)."""
    denoised = load_denoised(denoised_path)
    if kind == "denoised":
        return denoised.image, denoised.frame
    if not micrograph_path:
        raise InputError(
            f"{denoised_path}: a U-Net with input {kind!r} needs the micrograph "
            "file, not only its denoised canvas"
        )
    if kind == "normalised":
        if not diameter_file_px:
            raise ValueError("the 'normalised' input needs the particle diameter")
        diameter_px = diameter_file_px / denoised.frame.scale
        return (
            normalised_canvas(micrograph_path, denoised.frame, diameter_px, invert, lowpass),
            denoised.frame,
        )
    return binned_canvas(micrograph_path, denoised.frame, invert), denoised.frame
