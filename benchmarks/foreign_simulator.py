"""The shipped U-Net on micrographs from a simulator that is not cryopick's, beside RELION's LoG
picker at every threshold (its best one in hindsight is how the issue quotes the peer).

The issue's hidden check renders ~90 A particles at 2 A/px, raw, at SNR 0.05 and 0.01, with a
simulator we cannot see. On cryopick's own held-out grids (benchmarks/generality.py, crowded
fields with ice gradients, carbon and contamination) RELION LoG at its best threshold scores far
below the 0.95 / 0.67 the issue reports for it there, so those grids are harder than that
simulator and their numbers do not say where we stand on it. This script renders micrographs
with code written apart from cryopick.synthetic, in the simplest physics a simulator uses:

- one specimen per micrograph: 40 Gaussian blobs (sigma d/14) at random points of a ball of
  radius 0.4 d, a fresh random 3D rotation per particle, projected along the beam;
- particles whole inside the field and never overlapping, centres at least 1.1 d apart;
- a weak-phase CTF (300 kV, Cs 2.7 mm, amplitude contrast 0.1, defocus 1.0-2.5 um, B 50 A^2),
  particles dark;
- white Gaussian noise at an SNR defined two ways, since simulators differ: over the particles
  ("particle": the signal's variance inside the particle discs, cryopick's definition) or over
  the whole image ("image": the signal's variance over the field, which at this density gives
  each particle several times more contrast for the same number).

Nothing is tuned on these micrographs: the U-Net runs at the default config's operating point,
as the workflow runs it (the model's stored threshold and min distance, config/config.yaml's
edge margin); its threshold sweep is shown only to say how far that point is from the best one.
Truth is every centre (all particles lie whole in the field, centres at least 0.5 d from the
edge), scored over the whole field at 0.5 and 0.25 x diameter; so the U-Net is also scored with
other edge margins (the model's tuned 1.0 d never picks the band 0.5-1.0 d from the edge).

    .venv/bin/python benchmarks/foreign_simulator.py --threads 1 --tag session18   # ~10 min

Writes benchmarks/results/foreign_simulator[_TAG].md and _per_micrograph.tsv; micrographs are
cached under resources/cache/foreign_simulator/ (gitignored).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.generality import (  # noqa: E402
    default_picking,
    model_prediction,
    write_test_micrograph,
)
from benchmarks.tables import markdown  # noqa: E402
from cryopick.checkpoint import load_model  # noqa: E402
from cryopick.inference import stored_setting_picks  # noqa: E402
from cryopick.io import (  # noqa: E402
    read_coordinates,
)
from cryopick.metrics import score_micrograph, summarise  # noqa: E402
from cryopick.peers import peer_unavailable, relion_log_picks  # noqa: E402

CACHE = ROOT / "resources" / "cache" / "foreign_simulator"
MODEL = ROOT / "models" / "unet_general.pt"
SEED = 9950  # no training set or other test grid uses it
SIZE = 1024
# (pixel size A/px, particle diameter A): the geometry (45 px), and 83 px particles
GEOMETRIES = ((2.0, 90.0), (1.2, 100.0))
SNRS = (0.05, 0.01)
SNR_DEFINITIONS = ("particle", "image")
MICROGRAPHS_PER_CASE = 6
MODEL_THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
EDGE_MARGINS = (0.5, 0.75, 1.0)  # diameters; the model's tuned one is 1.0
LOG_ADJUSTMENTS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)


@dataclass(frozen=True)
class Case:
    pixel_size: float
    diameter: float
    snr: float
    snr_definition: str
    index: int

    @property
    def name(self) -> str:
        return (
            f"px{self.pixel_size:g}_d{self.diameter:.0f}_snr{self.snr:g}_"
            f"{self.snr_definition}_{self.index}"
        )

    @property
    def diameter_px(self) -> float:
        return self.diameter / self.pixel_size


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3D rotation (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def specimen(rng: np.random.Generator, diameter_px: float, n_blobs: int = 40) -> np.ndarray:
    """Blob centres (n, 3) in pixels, uniform in a ball of radius 0.4 d."""
    points = rng.standard_normal((n_blobs, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    radii = 0.4 * diameter_px * rng.random(n_blobs) ** (1 / 3)
    return points * radii[:, None]


def positions(rng: np.random.Generator, diameter_px: float, count: int) -> np.ndarray:
    """Up to ``count`` centres, whole inside the field, at least 1.1 d apart (rejection)."""
    low, high = 0.5 * diameter_px + 1, SIZE - 0.5 * diameter_px - 1
    placed: list[np.ndarray] = []
    for _ in range(count * 50):
        candidate = rng.uniform(low, high, 2)
        if all(np.hypot(*(candidate - p)) >= 1.1 * diameter_px for p in placed):
            placed.append(candidate)
            if len(placed) == count:
                break
    return np.array(placed)


def projection(rng: np.random.Generator, centres: np.ndarray, blobs: np.ndarray, d_px: float):
    """Projected density of every particle (a fresh rotation each) on the field."""
    sigma = d_px / 14
    half = int(np.ceil(0.5 * d_px + 3 * sigma))
    image = np.zeros((SIZE + 2 * half, SIZE + 2 * half))  # padded: patches may cross the edge
    grid = np.arange(-half, half + 1)
    for centre in centres:
        rotated = blobs @ random_rotation(rng).T
        ix, iy = int(round(centre[0])) + half, int(round(centre[1])) + half
        dx, dy = centre[0] + half - ix, centre[1] + half - iy
        gx = np.exp(-((grid[None, :] - rotated[:, :1] - dx) ** 2) / (2 * sigma**2))
        gy = np.exp(-((grid[None, :] - rotated[:, 1:2] - dy) ** 2) / (2 * sigma**2))
        patch = gy.T @ gx  # (rows y, columns x): the sum of the blobs' 2D Gaussians
        image[iy - half : iy + half + 1, ix - half : ix + half + 1] += patch
    return image[half:-half, half:-half]


def weak_phase_ctf(shape: tuple[int, int], pixel_size: float, defocus_um: float) -> np.ndarray:
    """sin(chi) + A cos(chi) with a B-factor envelope on the rfft grid (300 kV, Cs 2.7 mm)."""
    wavelength = 12.2643 / np.sqrt(300e3 * (1 + 0.978466e-6 * 300e3))  # A
    fy = np.fft.fftfreq(shape[0], d=pixel_size)
    fx = np.fft.rfftfreq(shape[1], d=pixel_size)
    k2 = fy[:, None] ** 2 + fx[None, :] ** 2
    defocus, cs = defocus_um * 1e4, 2.7e7
    chi = np.pi * wavelength * defocus * k2 - 0.5 * np.pi * cs * wavelength**3 * k2**2
    amplitude = 0.1
    ctf = np.sqrt(1 - amplitude**2) * np.sin(chi) + amplitude * np.cos(chi)
    return ctf * np.exp(-50.0 * k2 / 4)


def render(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """(micrograph float32, truth centres (n, 2) as x, y) of one case."""
    seed = [SEED, int(case.pixel_size * 10), int(case.diameter), int(case.snr * 1000)]
    rng = np.random.default_rng(seed + [SNR_DEFINITIONS.index(case.snr_definition), case.index])
    d_px = case.diameter_px
    count = int(0.10 * SIZE**2 / (np.pi * (d_px / 2) ** 2))  # about 10 % of the field
    centres = positions(rng, d_px, count)
    density = projection(rng, centres, specimen(rng, d_px), d_px)
    ctf = weak_phase_ctf(density.shape, case.pixel_size, rng.uniform(1.0, 2.5))
    signal = -np.fft.irfft2(np.fft.rfft2(density) * ctf, s=density.shape)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    inside = np.zeros((SIZE, SIZE), dtype=bool)
    for x, y in centres:
        inside |= (xx - x) ** 2 + (yy - y) ** 2 <= (d_px / 2) ** 2
    variance = signal[inside].var() if case.snr_definition == "particle" else signal.var()
    noise = rng.standard_normal(signal.shape) * np.sqrt(variance / case.snr)
    return (signal + noise).astype(np.float32), centres


def cases() -> list[Case]:
    return [
        Case(pixel_size, diameter, snr, definition, index)
        for pixel_size, diameter in GEOMETRIES
        for definition in SNR_DEFINITIONS
        for snr in SNRS
        for index in range(MICROGRAPHS_PER_CASE)
    ]


def cached_case(case: Case) -> tuple[Path, Path, Path]:
    """(micrograph .mrc, denoised canvas .npz, truth .csv), rendered once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    mrc, npz, csv = (CACHE / f"{case.name}.{ext}" for ext in ("mrc", "npz", "csv"))
    if not (mrc.exists() and npz.exists() and csv.exists()):
        image, centres = render(case)
        write_test_micrograph(image, case.pixel_size, centres, mrc, npz, csv)
    return mrc, npz, csv


def relion_log_sweep(micrograph: Path, case: Case) -> dict[str, pd.DataFrame]:
    """RELION LoG picks, as the workflow's peer runs it (cryopick.peers.relion_log_picks), at
    each threshold adjustment."""
    with tempfile.TemporaryDirectory() as tmp:
        return {
            f"{adjust:g}": relion_log_picks(
                str(micrograph), case.pixel_size, case.diameter, False, Path(tmp), adjust
            )
            for adjust in LOG_ADJUSTMENTS
        }


def model_sweep(model, checkpoint: dict, mrc: Path, npz: Path, case: Case, workdir: Path):
    """The U-Net's picks at the default config's operating point ("stored"), at each of
    MODEL_THRESHOLDS with its other settings, and with each of EDGE_MARGINS ("margin X")."""
    prediction, frame = model_prediction(model, checkpoint, mrc, npz, case.diameter_px, workdir)
    picking = default_picking(checkpoint)
    settings = {"stored": picking}
    settings |= {f"{t:g}": picking | {"threshold": t} for t in MODEL_THRESHOLDS}
    settings |= {f"margin {m:g}": picking | {"edge_margin": m} for m in EDGE_MARGINS}
    return {
        label: stored_setting_picks(prediction, frame, case.diameter_px, chosen)
        for label, chosen in settings.items()
    }


def evaluate(model, checkpoint: dict, with_log: bool) -> pd.DataFrame:
    """One row per micrograph, picker and threshold."""
    workdir = CACHE / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for case in cases():
        mrc, npz, csv = cached_case(case)
        truth = read_coordinates(csv)
        pickers = {"shipped U-Net": model_sweep(model, checkpoint, mrc, npz, case, workdir)}
        if with_log:
            pickers["RELION 3.1 LoG"] = relion_log_sweep(mrc, case)
        about = {
            "pixel_size": case.pixel_size,
            "diameter": case.diameter,
            "snr_definition": case.snr_definition,
            "snr": case.snr,
        }
        for method, by_threshold in pickers.items():
            for threshold, picks in by_threshold.items():
                score = score_micrograph(
                    case.name, picks, truth, case.diameter_px, (SIZE, SIZE)
                ).row()
                rows.append({"method": method, "threshold": threshold} | about | score)
        print(case.name, len(truth), "particles", flush=True)
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per geometry and SNR: the U-Net at the default config's operating point and with each
    edge margin of EDGE_MARGINS, and the U-Net and LoG at their best thresholds in
    hindsight."""
    keys = ["pixel_size", "diameter", "snr_definition", "snr"]
    out = []
    for key, group in rows.groupby(keys, sort=False):
        line = dict(zip(keys, key))
        for (method, label), cell in group.groupby(["method", "threshold"], sort=False):
            pooled = summarise(cell)
            short = "U-Net" if method.endswith("U-Net") else "LoG"
            if label == "stored":
                line |= {f"U-Net {k}": pooled[k] for k in ("precision", "recall", "f1", "f1_r025")}
            elif label.startswith("margin"):
                line[f"U-Net f1, {label} d"] = pooled["f1"]
            elif pooled["f1"] > line.get(f"{short} best f1", -1.0):
                line[f"{short} best f1"] = pooled["f1"]
                line[f"{short} best at"] = label
        out.append(line)
    return pd.DataFrame(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--tag", default="")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, checkpoint = load_model(args.model, device="cpu")
    unavailable = peer_unavailable("relion_log")
    if unavailable:
        print(f"RELION LoG left out: {unavailable}")
    start = time.perf_counter()
    rows = evaluate(model, checkpoint, not unavailable)
    table = summary(rows)
    print(table.round(3).to_string(index=False))
    suffix = f"_{args.tag}" if args.tag else ""
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / f"foreign_simulator{suffix}_per_micrograph.tsv", sep="\t", index=False)
    text = [
        f"# A simulator that is not ours (benchmarks/foreign_simulator.py"
        f"{' --tag ' + args.tag if args.tag else ''})",
        "",
        f"{time.perf_counter() - start:.0f} s. Model {Path(args.model).name} at the default "
        f"config's operating point {default_picking(checkpoint)} (tuned edge margin "
        f"{checkpoint['picking']['edge_margin']} d). "
        f"{MICROGRAPHS_PER_CASE} micrographs of {SIZE}^2 per row, "
        "pooled F1 at 0.5 x diameter (f1) and 0.25 x diameter (f1_r025), whole field. The "
        "U-Net at that operating point, and with other edge margins; 'best' columns: the best "
        "threshold in hindsight "
        f"(U-Net over {', '.join(map(str, MODEL_THRESHOLDS))}; RELION LoG over threshold "
        f"adjustments {', '.join(map(str, LOG_ADJUSTMENTS))}).",
        "",
        markdown(table),
        "",
    ]
    (out / f"foreign_simulator{suffix}.md").write_text("\n".join(text))


if __name__ == "__main__":
    main()
