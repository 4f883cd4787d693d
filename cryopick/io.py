"""Reading micrographs and reading/writing particle coordinates.

Every reader raises :class:`InputError` naming the file and the problem, so that one bad
micrograph gives a message a user can act on instead of a traceback from deep inside a library.

Coordinate convention everywhere in cryopick: ``x`` is the column and ``y`` the row of the image
*as stored in the file*, origin at the top-left pixel centre, in pixels of that file.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MICROGRAPH_SUFFIXES = (".mrc", ".mrcs", ".tif", ".tiff", ".jpg", ".jpeg", ".png")
COORDINATE_SUFFIXES = (".csv", ".star", ".box")

log = logging.getLogger(__name__)


class InputError(ValueError):
    """A user-supplied file or setting is unusable; the message names it and says why."""


@dataclass(frozen=True)
class Micrograph:
    """A micrograph as float32 (rows, columns) plus the pixel size found in its header, if any."""

    image: np.ndarray
    pixel_size: float | None
    path: str


def micrograph_name(path: str | os.PathLike) -> str:
    """The name that identifies a micrograph in every output: the file name without suffix.
    (String operations, not pathlib: every job's parse names each micrograph of the run.)"""
    name = os.path.basename(os.fspath(path))
    lower = name.lower()
    for suffix in MICROGRAPH_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return os.path.splitext(name)[0]


def _read_mrc(path: Path) -> tuple[np.ndarray, float | None]:
    import mrcfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
                if mrc.data is None:
                    raise InputError(
                        f"{path}: MRC file is truncated or its header is damaged (header says "
                        f"{int(mrc.header.nx)}x{int(mrc.header.ny)}x{int(mrc.header.nz)} of mode "
                        f"{int(mrc.header.mode)}; the file holds {path.stat().st_size} bytes)"
                    )
                header_size = int(mrc.header.nx), int(mrc.header.ny), int(mrc.header.nz)
                data = np.asarray(mrc.data)
                voxel = float(mrc.voxel_size.x)
    except InputError:
        raise
    except Exception as exc:  # mrcfile raises ValueError/OSError for many kinds of damage
        raise InputError(f"{path}: not a readable MRC file ({exc})") from exc
    expected = header_size[0] * header_size[1] * header_size[2]
    if data.size < expected or data.size == 0:
        raise InputError(
            f"{path}: MRC file is truncated (header says {header_size[0]}x{header_size[1]}"
            f"x{header_size[2]}, file holds {data.size} values)"
        )
    if data.ndim == 3:  # a stack or a movie: the first frame
        if data.shape[0] > 1:
            log.warning(
                "%s: a stack of %d frames; only the first is used (give motion-corrected sums, "
                "not movies)",
                path,
                data.shape[0],
            )
        data = data[0]
    if data.ndim != 2:
        raise InputError(f"{path}: expected a 2D image or a stack, got shape {data.shape}")
    if np.iscomplexobj(data):
        data = np.abs(data)
    pixel_size = voxel if voxel > 0 else None
    return np.array(data, dtype=np.float32), pixel_size


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            n_pages = len(tif.pages)
            data = tif.pages[0].asarray()
    except Exception as exc:
        raise InputError(f"{path}: not a readable TIFF file ({exc})") from exc
    if n_pages > 1:
        log.warning(
            "%s: a stack of %d frames; only the first is used (give motion-corrected sums, "
            "not movies)",
            path,
            n_pages,
        )
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        data = data[..., :3].mean(axis=-1)
    if data.ndim != 2:
        raise InputError(f"{path}: expected a 2D image, got shape {data.shape}")
    return np.asarray(data, dtype=np.float32)


def _read_raster(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("L", "I", "I;16", "F"):
                img = img.convert("L")
            data = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from exc
    return np.asarray(data, dtype=np.float32)


# smaller is a thumbnail, an icon or a particle, not a micrograph; the smallest real ones (a
# 4x binned K3 frame) are about 1000 pixels a side
MIN_MICROGRAPH_SIDE = 128


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, hex (models, training inputs, the report's provenance)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def missing_file_message(path: str | os.PathLike, what: str = "file") -> str:
    """Why ``path`` cannot be read, in one line: a dangling symbolic link names its target."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return f"{path}: dangling symbolic link (its target {os.readlink(path)} does not exist)"
    if path.exists():
        return f"{path}: {what} is not a regular file"
    return f"{path}: {what} does not exist"


def read_micrograph(path: str | os.PathLike) -> Micrograph:
    """Read a micrograph (.mrc/.mrcs first frame, .tif, .jpg, .png) as float32.

    Raises InputError for missing, unreadable, truncated, non-finite or constant images.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(missing_file_message(path, "micrograph file"))
    suffix = path.suffix.lower()
    pixel_size = None
    if suffix in (".mrc", ".mrcs"):
        image, pixel_size = _read_mrc(path)
    elif suffix in (".tif", ".tiff"):
        image = _read_tiff(path)
    elif suffix in (".jpg", ".jpeg", ".png"):
        image = _read_raster(path)
    else:
        raise InputError(
            f"{path}: unsupported micrograph format {suffix!r} "
            f"(supported: {', '.join(MICROGRAPH_SUFFIXES)})"
        )
    if min(image.shape) < MIN_MICROGRAPH_SIDE:
        raise InputError(
            f"{path}: image of {image.shape[1]} x {image.shape[0]} pixels is too small to be a "
            f"micrograph (at least {MIN_MICROGRAPH_SIDE} per side)"
        )
    finite = np.isfinite(image)
    if not finite.all():
        bad = int((~finite).sum())
        raise InputError(f"{path}: image holds {bad} NaN or infinite values")
    if float(image.max()) == float(image.min()):
        raise InputError(f"{path}: image is constant (every pixel is {float(image.min())})")
    return Micrograph(image=image, pixel_size=pixel_size, path=str(path))


def write_mrc(
    path: str | os.PathLike,
    image: np.ndarray,
    pixel_size: float | None = None,
    label: str = "written by cryopick",
) -> None:
    """Write a 2D float32 MRC atomically, with the pixel size in the header.

    Byte-identical for identical input: mrcfile stamps the creation time into the first header
    label, which is replaced by ``label``.
    """
    import mrcfile

    path = Path(path)
    with _atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.asarray(image, dtype=np.float32))
            if pixel_size:
                mrc.voxel_size = float(pixel_size)
            mrc.header.label[0] = label.encode("ascii")[:80]
            mrc.header.nlabl = 1


# ----------------------------------------------------------------------------------------------
# coordinates
# ----------------------------------------------------------------------------------------------

COORDINATE_COLUMNS = ["x", "y", "score", "diameter"]


def empty_coordinates() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in COORDINATE_COLUMNS})


def _coordinates_frame(x, y, score=None, diameter=None) -> pd.DataFrame:
    n = len(x)
    return pd.DataFrame(
        {
            "x": np.asarray(x, dtype=np.float64),
            "y": np.asarray(y, dtype=np.float64),
            "score": np.asarray(score if score is not None else np.ones(n), dtype=np.float64),
            "diameter": np.asarray(
                diameter if diameter is not None else np.full(n, np.nan), dtype=np.float64
            ),
        }
    )


def read_coordinates(path: str | os.PathLike, box_size: float | None = None) -> pd.DataFrame:
    """Read particle coordinates from CryoPPP .csv, RELION .star or EMAN .box.

    Returns a frame with columns x, y, score, diameter (pixels of the micrograph file).
    EMAN .box stores the box's lower-left corner: centres are corner + size / 2.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(missing_file_message(path, "coordinate file"))
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_cryoppp_csv(path)
        if suffix == ".star":
            return _read_star_coordinates(path)
        if suffix == ".box":
            return _read_box(path, box_size)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot parse coordinates ({exc})") from exc
    raise InputError(f"{path}: unsupported coordinate format {suffix!r}")


# CSV column spellings, compared lower-case with everything but letters removed: CryoPPP's
# X-Coordinate, plain x / X, x_coord, rlnCoordinateX...
CSV_COLUMNS = {
    "x": {"x", "xcoordinate", "xcoord", "coordinatex", "rlncoordinatex", "centerx", "centrex"},
    "y": {"y", "ycoordinate", "ycoord", "coordinatey", "rlncoordinatey", "centery", "centrey"},
    "diameter": {"diameter", "d", "rlndiameter", "size"},
    "score": {"confidence", "score", "fom", "rlnautopickfigureofmerit", "probability"},
}


def _csv_column(name: str) -> str | None:
    key = "".join(ch for ch in str(name).lower() if ch.isalpha())
    return next((col for col, spellings in CSV_COLUMNS.items() if key in spellings), None)


def _read_cryoppp_csv(path: Path) -> pd.DataFrame:
    """CryoPPP's X-Coordinate,Y-Coordinate[,Diameter] and the other common spellings (x,y;
    X,Y; x_coord...; any order, other columns ignored), or headerless x,y[,diameter]."""
    table = pd.read_csv(path)
    if len(table.columns) >= 2 and all(_is_number(c) for c in table.columns[:2]):
        table = pd.read_csv(path, header=None)  # no header: x, y[, diameter]
        table.columns = ["x", "y", "diameter", *table.columns[3:]][: len(table.columns)]
    found: dict[str, str] = {}
    for column in table.columns:
        kind = _csv_column(column)
        if kind and kind not in found:
            found[kind] = column
    if not {"x", "y"} <= set(found):
        raise InputError(
            f"{path}: coordinate CSV needs an x and a y column (X-Coordinate/Y-Coordinate, x/y, "
            f"X/Y, x_coord/y_coord...); found columns {[str(c) for c in table.columns]}"
        )
    if table.empty:
        return empty_coordinates()
    diameter = table[found["diameter"]] if "diameter" in found else None
    score = table[found["score"]] if "score" in found else None
    return _coordinates_frame(table[found["x"]], table[found["y"]], score, diameter)


def _is_number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _read_star_coordinates(path: Path) -> pd.DataFrame:
    import starfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blocks = starfile.read(path, always_dict=True)
    for table in blocks.values():
        if isinstance(table, pd.DataFrame) and {"rlnCoordinateX", "rlnCoordinateY"} <= set(
            table.columns
        ):
            score = table.get("rlnAutopickFigureOfMerit")
            diameter = table.get("rlnDiameter")
            return _coordinates_frame(
                table["rlnCoordinateX"], table["rlnCoordinateY"], score, diameter
            )
    if not blocks or all(getattr(t, "empty", False) for t in blocks.values()):
        return empty_coordinates()
    raise InputError(f"{path}: no data block with rlnCoordinateX/rlnCoordinateY")


def _read_box(path: Path, box_size: float | None) -> pd.DataFrame:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return empty_coordinates()
    values = np.array([[float(v) for v in row[:4]] for row in rows])
    if values.shape[1] < 4:
        if box_size is None:
            raise InputError(f"{path}: .box lines need x y width height")
        width = height = np.full(len(values), float(box_size))
    else:
        width, height = values[:, 2], values[:, 3]
    return _coordinates_frame(
        values[:, 0] + width / 2, values[:, 1] + height / 2, None, np.maximum(width, height)
    )


def _current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _atomic_path:
    """Context manager yielding a temporary path next to ``path``; renamed onto it on success.

    A crash or error leaves the previous file (if any) untouched and no half-written file behind.
    The file gets the permissions a plain ``open()`` would give it (0666 less the umask), not
    the owner-only ones of a temporary file, so the user's group can read what we write.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            os.chmod(self.tmp, 0o666 & ~_current_umask())
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False


def atomic_path(path: str | os.PathLike) -> _atomic_path:
    """Public alias: ``with atomic_path(out) as tmp: write(tmp)``."""
    return _atomic_path(Path(path))


EXCLUDED_LABEL = "_cryopickExcluded"  # RELION keeps an unknown label's values and warns once


def write_star(path: str | os.PathLike, picks: pd.DataFrame) -> None:
    """RELION coordinate STAR: block ``data_``, rlnCoordinateX/Y and rlnAutopickFigureOfMerit.

    Written by hand (not starfile) so the file is byte-stable and RELION 3.1 reads it: a plain
    ``data_`` block name, a ``loop_`` and one particle per line.
    """
    lines = [
        "# written by cryopick",
        "",
        "data_",
        "",
        "loop_",
        "_rlnCoordinateX #1",
        "_rlnCoordinateY #2",
        "_rlnAutopickFigureOfMerit #3",
    ]
    if "excluded" in picks:  # exclusion.action flag: 1 where the pick lies in an excluded area
        lines.append(f"{EXCLUDED_LABEL} #4")
        flags = picks["excluded"].to_numpy(int)
        lines += [f"{x:.2f}\t{y:.2f}\t{s:.6f}\t{f}" for (x, y, s), f in zip(_rows(picks), flags)]
    else:
        lines += [f"{x:.2f}\t{y:.2f}\t{s:.6f}" for x, y, s in _rows(picks)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def write_cryoppp_csv(path: str | os.PathLike, picks: pd.DataFrame, diameter: float) -> None:
    """CryoPPP layout: X-Coordinate,Y-Coordinate,Diameter,Confidence (integer pixel centres)."""
    lines = ["X-Coordinate,Y-Coordinate,Diameter,Confidence"]
    lines += [f"{round(x)},{round(y)},{round(diameter)},{s:.6f}" for x, y, s in _rows(picks)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def write_box(path: str | os.PathLike, picks: pd.DataFrame, box_size: int) -> None:
    """EMAN .box: lower-left corner x, y, then width and height, tab separated."""
    half = box_size / 2
    lines = [
        f"{round(x - half)}\t{round(y - half)}\t{box_size}\t{box_size}" for x, y, _ in _rows(picks)
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines))


def _rows(picks: pd.DataFrame):
    return zip(
        picks["x"].to_numpy(float), picks["y"].to_numpy(float), picks["score"].to_numpy(float)
    )


def write_coordinates(path: str | os.PathLike, picks: pd.DataFrame, diameter: float) -> None:
    """Write picks in the format named by the suffix (.star, .csv or .box)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".star":
        write_star(path, picks)
    elif suffix == ".csv":
        write_cryoppp_csv(path, picks, diameter)
    elif suffix == ".box":
        write_box(path, picks, int(round(diameter)))
    else:
        raise InputError(f"{path}: unsupported coordinate format {suffix!r}")


def find_coordinate_file(folder: str | os.PathLike, name: str) -> Path | None:
    """The ground-truth file for micrograph ``name`` in ``folder`` (.csv, .star or .box)."""
    folder = Path(folder)
    for suffix in COORDINATE_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def write_relion_micrographs_star(
    path: str | os.PathLike,
    micrographs: list[str],
    pixel_size: float,
    voltage: float = 300.0,
    spherical_aberration: float = 2.7,
    amplitude_contrast: float = 0.1,
) -> None:
    """A RELION 3.1 micrographs STAR (optics + micrographs blocks), so that our picks can be
    extracted with `relion_preprocess --extract` or compared with `relion_autopick`."""
    lines = [
        "data_optics",
        "",
        "loop_",
        "_rlnOpticsGroupName #1",
        "_rlnOpticsGroup #2",
        "_rlnMicrographPixelSize #3",
        "_rlnVoltage #4",
        "_rlnSphericalAberration #5",
        "_rlnAmplitudeContrast #6",
        f"opticsGroup1 1 {pixel_size} {voltage} {spherical_aberration} {amplitude_contrast}",
        "",
        "data_micrographs",
        "",
        "loop_",
        "_rlnMicrographName #1",
        "_rlnOpticsGroup #2",
    ]
    lines += [f"{name} 1" for name in micrographs]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
