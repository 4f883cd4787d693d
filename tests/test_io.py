import os

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
from PIL import Image

from cryopick.io import (
    InputError,
    micrograph_name,
    read_coordinates,
    read_micrograph,
    write_box,
    write_cryoppp_csv,
    write_mrc,
    write_star,
)


def _image(shape=(128, 160), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int16, np.float32, np.uint16, np.float16, np.complex64]
)
def test_mrc_every_mode_reads_as_float32(tmp_path, dtype):
    data = (_image() * 20).astype(dtype)
    path = tmp_path / "a.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 1.5
    micrograph = read_micrograph(path)
    assert micrograph.image.dtype == np.float32
    expected = np.abs(data) if np.iscomplexobj(data) else data.astype(np.float32)
    np.testing.assert_allclose(micrograph.image, expected, rtol=1e-3)
    assert micrograph.pixel_size == pytest.approx(1.5)


def test_mrcs_stack_gives_first_frame_and_header_pixel_size(tmp_path):
    stack = np.stack([_image(seed=i) for i in range(3)])
    path = tmp_path / "movie.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(stack)
        mrc.voxel_size = 0.83
    micrograph = read_micrograph(path)
    np.testing.assert_array_equal(micrograph.image, stack[0])
    assert micrograph.pixel_size == pytest.approx(0.83)


def test_mrc_without_pixel_size_reports_none(tmp_path):
    path = tmp_path / "a.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(_image())
    assert read_micrograph(path).pixel_size is None


def test_truncated_mrc_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "cut.mrc"
    write_mrc(path, _image((128, 128)), 1.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.mrc.*truncated"):
        read_micrograph(path)


def test_garbage_mrc_is_refused(tmp_path):
    path = tmp_path / "junk.mrc"
    path.write_bytes(b"this is not an MRC file" * 10)
    with pytest.raises(InputError, match=r"junk\.mrc"):
        read_micrograph(path)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_raster_formats(tmp_path, suffix):
    data = (np.linspace(0, 255, 128 * 160).reshape(128, 160)).astype(np.uint8)
    path = tmp_path / f"m{suffix}"
    if suffix == ".tif":
        import tifffile

        tifffile.imwrite(path, data)
    else:
        Image.fromarray(data).save(path, quality=100)
    image = read_micrograph(path).image
    assert image.shape == (128, 160)
    assert np.abs(image - data).mean() < 2  # jpg is lossy


def test_unreadable_image_is_refused(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError, match=r"broken\.png.*not a readable image"):
        read_micrograph(path)


def test_nan_and_constant_images_are_refused(tmp_path):
    image = _image()
    image[3, 4] = np.nan
    write_mrc(tmp_path / "nan.mrc", image)
    with pytest.raises(InputError, match=r"nan\.mrc.*1 NaN"):
        read_micrograph(tmp_path / "nan.mrc")
    write_mrc(tmp_path / "flat.mrc", np.full((128, 128), 3.0, np.float32))
    with pytest.raises(InputError, match=r"flat\.mrc.*constant"):
        read_micrograph(tmp_path / "flat.mrc")


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_micrograph(tmp_path / "nothing.mrc")
    (tmp_path / "x.dm4").write_bytes(b"1234")
    with pytest.raises(InputError, match="unsupported micrograph format"):
        read_micrograph(tmp_path / "x.dm4")


def test_micrograph_name_strips_known_suffixes():
    assert micrograph_name("/a/b/Falcon_1.2_0.mrcs") == "Falcon_1.2_0"
    assert micrograph_name("stack.tiff") == "stack"


def _picks():
    return pd.DataFrame(
        {
            "x": [10.5, 200.0, 33.25],
            "y": [20.0, 5.5, 400.75],
            "score": [0.9, 0.5, 0.1],
            "diameter": [50.0] * 3,
        }
    )


def test_star_roundtrip_and_relion_layout(tmp_path):
    path = tmp_path / "p.star"
    write_star(path, _picks())
    text = path.read_text()
    assert "\ndata_\n" in text and "_rlnCoordinateX #1" in text
    table = starfile.read(path)
    np.testing.assert_allclose(table["rlnCoordinateX"], [10.5, 200.0, 33.25])
    np.testing.assert_allclose(table["rlnAutopickFigureOfMerit"], [0.9, 0.5, 0.1])
    back = read_coordinates(path)
    np.testing.assert_allclose(back[["x", "y", "score"]], _picks()[["x", "y", "score"]])


def test_csv_and_box_roundtrip(tmp_path):
    picks = _picks().assign(x=[10.0, 200.0, 33.0], y=[20.0, 6.0, 401.0])
    write_cryoppp_csv(tmp_path / "p.csv", picks, 50)
    back = read_coordinates(tmp_path / "p.csv")
    np.testing.assert_allclose(back[["x", "y"]], picks[["x", "y"]])
    assert (back["diameter"] == 50).all()
    write_box(tmp_path / "p.box", picks, 50)
    first = (tmp_path / "p.box").read_text().splitlines()[0].split()
    assert first == ["-15", "-5", "50", "50"]  # lower-left corner = centre - size/2
    np.testing.assert_allclose(read_coordinates(tmp_path / "p.box")[["x", "y"]], picks[["x", "y"]])


def test_empty_star_and_bad_csv(tmp_path):
    write_star(tmp_path / "e.star", _picks().iloc[:0])
    assert len(read_coordinates(tmp_path / "e.star")) == 0
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"bad\.csv.*X-Coordinate"):
        read_coordinates(tmp_path / "bad.csv")


def test_write_mrc_is_byte_reproducible(tmp_path):
    image = _image()
    write_mrc(tmp_path / "a.mrc", image, 1.2)
    write_mrc(tmp_path / "b.mrc", image, 1.2)
    assert (tmp_path / "a.mrc").read_bytes() == (tmp_path / "b.mrc").read_bytes()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_get_the_permissions_of_a_plain_open(tmp_path, umask):
    """Outputs are readable by the user's group (0666 less the umask), not owner-only like the
    temporary file they are written through."""
    from cryopick.io import atomic_path

    old = os.umask(umask)
    try:
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x")
    finally:
        os.umask(old)
    mode = (tmp_path / "out.txt").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask == (tmp_path / "plain.txt").stat().st_mode & 0o777
