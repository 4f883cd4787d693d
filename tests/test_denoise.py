import numpy as np
import pytest

from cryopick.denoise import (
    DenoiseSettings,
    Frame,
    bin_to_frame,
    denoise_file,
    frame_for,
    load_denoised,
    load_frame,
)
from cryopick.io import InputError, write_mrc
from cryopick.picking import BlobSettings, pick_blobs
from tests.conftest import disc_micrograph

SMALL = DenoiseSettings(size=256, nlm_search=11, guided_radius=8, clahe_tiles=8)


@pytest.mark.parametrize("shape", [(4096, 4096), (7420, 7676), (600, 800), (800, 600)])
def test_frame_keeps_aspect_ratio_and_maps_back_exactly(shape):
    frame = frame_for(shape, 1024)
    assert max(frame.content_height, frame.content_width) == 1024
    assert abs(frame.scale_x - frame.scale_y) / frame.scale < 0.01
    x, y = np.array([0.0, 17.3, shape[1] - 1.0]), np.array([0.0, 99.9, shape[0] - 1.0])
    xn, yn = frame.to_network(x, y)
    xo, yo = frame.to_original(xn, yn)
    np.testing.assert_allclose(xo, x, atol=1e-9)
    np.testing.assert_allclose(yo, y, atol=1e-9)
    assert xn.max() < frame.content_width and yn.max() < frame.content_height


def test_binning_places_content_top_left_and_pads_with_the_median():
    image = np.zeros((300, 600), np.float32)
    image[:, 300:] = 10
    frame = frame_for(image.shape, 128)
    canvas = bin_to_frame(image, frame)
    assert canvas.shape == (128, 128)
    assert (frame.content_height, frame.content_width) == (64, 128)
    assert np.allclose(canvas[70:, :], np.median(canvas[:64, :]))


def test_denoise_file_keeps_particles_where_they_are(tmp_path):
    """A non-square micrograph: picks on the denoised canvas map back to the true centres."""
    image, centres = disc_micrograph((600, 800), n=20, diameter=40, seed=3)
    write_mrc(tmp_path / "m.mrc", image, pixel_size=2.0)
    out = tmp_path / "m.npz"
    denoised = denoise_file(str(tmp_path / "m.mrc"), str(out), SMALL)
    again = load_denoised(out)
    assert again.image.dtype == np.uint8 and again.image.shape == (256, 256)
    assert again.frame == denoised.frame
    assert again.pixel_size == pytest.approx(2.0 * 800 / 256)
    frame, file_pixel = load_frame(out)
    assert frame == denoised.frame and file_pixel == pytest.approx(2.0)
    picks = pick_blobs(again, 40 / frame.scale, BlobSettings(threshold=2.0, edge_margin=0.5))
    d = np.hypot(
        picks["x"].to_numpy()[:, None] - centres[:, 0],
        picks["y"].to_numpy()[:, None] - centres[:, 1],
    )
    assert len(picks) >= 18
    assert np.median(d.min(axis=1)) < 3.0  # pixels of the 600 x 800 file


def test_invert_makes_bright_particles_dark(tmp_path):
    image, centres = disc_micrograph((400, 400), n=8, diameter=40, seed=1)
    write_mrc(tmp_path / "bright.mrc", -image, pixel_size=1.0)
    dark = denoise_file(str(tmp_path / "bright.mrc"), str(tmp_path / "d.npz"), SMALL, invert=True)
    x, y = dark.frame.to_network(centres[:, 0], centres[:, 1])
    inside = dark.image[np.round(y).astype(int), np.round(x).astype(int)].mean()
    assert inside < dark.image.mean() - 20


def test_missing_pixel_size_is_a_clear_error(tmp_path):
    from PIL import Image

    image, _ = disc_micrograph((200, 200), n=3, diameter=30)
    Image.fromarray(((image - image.min()) * 60).astype(np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(InputError, match=r"m\.png.*pixel_size"):
        denoise_file(str(tmp_path / "m.png"), str(tmp_path / "o.npz"), SMALL, pixel_size=None)


def test_denoise_is_deterministic(tmp_path):
    image, _ = disc_micrograph((300, 300), n=5, diameter=30, seed=7)
    write_mrc(tmp_path / "m.mrc", image, 1.0)
    a = denoise_file(str(tmp_path / "m.mrc"), str(tmp_path / "a.npz"), SMALL)
    b = denoise_file(str(tmp_path / "m.mrc"), str(tmp_path / "b.npz"), SMALL)
    np.testing.assert_array_equal(a.image, b.image)


def test_frame_content_mask():
    frame = Frame(100, 50, 64, 32, 64)
    assert frame.content_mask.sum() == 64 * 32
