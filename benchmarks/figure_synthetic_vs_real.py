"""Figure: a synthetic micrograph beside a real EMPIAR-10017 one, and their power spectra.

    .venv/bin/python benchmarks/figure_synthetic_vs_real.py [--data ../shared/data/empiar10017]

The real JPGs are not raw: CryoPPP ran them through the denoising chain (Gaussian, non-local
means, Wiener, CLAHE, guided filter) at full resolution. So the comparison is made twice:

* full resolution (1.77 A/px): the real JPG against the synthetic micrograph put through the
  *same* chain at 4096^2 (cryopick.denoise with size 4096), the raw synthetic shown for scale;
* network input (1024^2 canvas): both through cryopick's own denoise step, as the pipeline
  would see them (the real one then denoised twice, which is what happens to these JPGs).

The synthetic micrograph is made like the real one shown (see SETTINGS below).

Spectra are of zero-mean, unit-variance images, so their shapes compare; a border of 256 px
is cut off first (the JPGs have filter stripes along their edges).
Writes docs/synthetic_vs_real.png and benchmarks/results/synthetic_vs_real.tsv.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryopick.ctf import radial_power_spectrum  # noqa: E402
from cryopick.denoise import DenoiseSettings, denoise_image, frame_for  # noqa: E402
from cryopick.io import read_micrograph  # noqa: E402
from cryopick.synthetic import SyntheticSettings, generate_micrograph  # noqa: E402

PIXEL_SIZE = 1.77
BORDER = 256
BANDS_A = [(1e9, 200.0), (200.0, 50.0), (50.0, 20.0), (20.0, 8.0), (8.0, 2 * PIXEL_SIZE)]
# Like the real micrograph shown: ~800 beta-galactosidase-sized particles (largest extent
# 170 A; its projections are 90-170 A wide) of compact oligomeric and multi-domain shapes
# over the whole field; no carbon, contamination or thick ice (the real one has none); an
# effective dose of 12 e-/A^2 (an integrating Falcon II of 2012 counts far less than a modern
# counting camera at the same dose). Everything else is the generator's default.
SETTINGS = dict(
    height=4096,
    width=4096,
    pixel_size=PIXEL_SIZE,
    particles_per_micrograph=800,
    particle_diameter=170.0,
    volume_kinds=("oligomer", "multidomain"),
    clustering=0.2,
    empty_fraction=0.0,
    carbon_probability=0.0,
    contaminants_per_um2=0.0,
    thick_ice_probability=0.0,
    dose=12.0,
)


def spectrum(image: np.ndarray, pixel_size: float, border: int) -> tuple[np.ndarray, np.ndarray]:
    core = np.asarray(image, dtype=np.float32)[border:-border, border:-border]
    core = (core - core.mean()) / core.std()
    return radial_power_spectrum(core, pixel_size, n_bins=min(core.shape) // 4)


def band_fractions(k: np.ndarray, power: np.ndarray) -> list[float]:
    # power per bin times the ring area (~k) is the variance in that ring
    weight = power * np.maximum(k, 1e-12)
    total = weight.sum()
    out = []
    for lo, hi in BANDS_A:
        sel = (k >= 1 / lo) & (k < 1 / hi)
        out.append(float(weight[sel].sum() / total))
    return out


def display(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [0.5, 99.5])
    return np.clip((image - lo) / (hi - lo), 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "empiar10017"))
    parser.add_argument("--micrograph", default="Falcon_2012_06_12-14_57_34_0.jpg")
    parser.add_argument("--seed", type=int, default=10017)
    parser.add_argument("--out", default=str(REPO / "docs" / "synthetic_vs_real.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real = read_micrograph(Path(args.data) / "micrographs" / args.micrograph).image
    settings = SyntheticSettings(**SETTINGS)
    start = time.perf_counter()
    synth = generate_micrograph(settings, 0, args.seed)
    print(f"generated in {time.perf_counter() - start:.1f} s; ctf {synth.ctf}")
    raw = synth.image
    start = time.perf_counter()
    same_chain = denoise_image(raw, DenoiseSettings(size=4096), frame_for(raw.shape, 4096))
    print(f"full-resolution chain in {time.perf_counter() - start:.1f} s")
    net = DenoiseSettings(size=1024)
    real_net = denoise_image(real, net, frame_for(real.shape, 1024))
    synth_net = denoise_image(raw, net, frame_for(raw.shape, 1024))

    spectra = {
        "real EMPIAR-10017 JPG (CryoPPP chain)": spectrum(real, PIXEL_SIZE, BORDER),
        "synthetic, same chain at 4096^2": spectrum(same_chain, PIXEL_SIZE, BORDER),
        "synthetic, raw": spectrum(raw, PIXEL_SIZE, BORDER),
    }
    net_px = PIXEL_SIZE * 4
    net_spectra = {
        "real JPG -> cryopick denoise (1024)": spectrum(real_net, net_px, BORDER // 4),
        "synthetic raw -> cryopick denoise (1024)": spectrum(synth_net, net_px, BORDER // 4),
    }

    rows = []
    for label, (k, p) in {**spectra, **net_spectra}.items():
        rows.append([label] + [f"{v:.4f}" for v in band_fractions(k, p)])
    header = ["image"] + [f"{'>' if lo > 1e8 else f'{lo:g}-'}{hi:g} A" for lo, hi in BANDS_A]
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    with open(results / "synthetic_vs_real.tsv", "w") as handle:
        handle.write(
            "# fraction of image variance per resolution band (zero-mean, "
            "unit-variance images, 256 px border removed)\n"
        )
        handle.write("\t".join(header) + "\n")
        for row in rows:
            handle.write("\t".join(row) + "\n")
    for row in rows:
        print("\t".join(row))

    fig = plt.figure(figsize=(13, 14.5), dpi=80)
    grid = fig.add_gridspec(3, 3, height_ratios=[1, 1, 1.05], hspace=0.25, wspace=0.08)
    crop = (slice(1700, 2300), slice(1700, 2300))  # 600 px = 1062 A at 1.77 A/px
    panels = [
        ("real EMPIAR-10017\n(CryoPPP-denoised JPG, 1.77 A/px)", real),
        ("synthetic, raw\n(4096^2, 1.77 A/px, shot noise 12 e/A^2)", raw),
        ("synthetic through the same chain\n(cryopick denoise at 4096^2)", same_chain),
    ]
    for column, (title, image) in enumerate(panels):
        ax = fig.add_subplot(grid[0, column])
        small = cv2.resize(np.asarray(image, np.float32), (512, 512), interpolation=cv2.INTER_AREA)
        ax.imshow(display(small), cmap="gray", interpolation="lanczos")
        ax.set_title(title + "\nwhole micrograph (7.25 kA)", fontsize=9)
        ax.axis("off")
        ax = fig.add_subplot(grid[1, column])
        ax.imshow(display(np.asarray(image, np.float32)[crop]), cmap="gray")
        ax.set_title("600 x 600 px crop (1.06 kA), same scale", fontsize=9)
        ax.axis("off")
    ax = fig.add_subplot(grid[2, :2])
    for (label, (k, p)), style in zip(spectra.items(), ["-", "-", ":"]):
        keep = k > 1 / 2000
        ax.semilogy(k[keep], p[keep], style, label=label, lw=1.2)
    for z in synth.ctf.zeros(12):
        if z < k[-1]:
            ax.axvline(z, color="0.8", lw=0.6, zorder=0)
    ax.set_xlabel("spatial frequency (1/A)   [grey: CTF zeros of the synthetic micrograph]")
    ax.set_ylabel("power (unit-variance images)")
    ax.set_title("radially averaged power spectra at 1.77 A/px", fontsize=10)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[2, 2])
    for label, (k, p) in net_spectra.items():
        keep = k > 1 / 2000
        ax.semilogy(k[keep], p[keep], label=label, lw=1.2)
    ax.set_xlabel("spatial frequency (1/A)")
    ax.set_title("network input (7.08 A/px)", fontsize=10)
    ax.legend(fontsize=7)
    fig.suptitle(
        "Synthetic vs real micrograph (EMPIAR-10017, beta-galactosidase-sized "
        "particles); cryopick/synthetic.py, seed %d" % args.seed,
        fontsize=11,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
