"""Rebuild the bundled demo data set from the 12-micrograph EMPIAR-10017 development set.

Run once by a developer who has ../shared/data/empiar10017 (users do not need to):
    python data/demo/make_demo.py ../shared/data/empiar10017 data/demo/empiar10017
Bins micrographs 4x (4096^2 at 1.77 A/px -> 1024^2 at 7.08 A/px) by area averaging, rescales
the CryoPPP coordinates with the same pixel-centre convention cryopick uses, and bins the
label masks (a binned pixel is particle when most of its 4x4 block was).
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

MICROGRAPHS = [
    "Falcon_2012_06_12-14_57_34_0",
    "Falcon_2012_06_12-15_41_22_0",
    "Falcon_2012_06_12-16_55_40_0",
]
FACTOR = 4


def main(source: Path, target: Path) -> None:
    for sub in ("micrographs", "coordinates", "masks"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    for name in MICROGRAPHS:
        image = np.asarray(Image.open(source / "micrographs" / f"{name}.jpg"), dtype=np.float64)
        h, w = image.shape
        binned = image.reshape(h // FACTOR, FACTOR, w // FACTOR, FACTOR).mean(axis=(1, 3))
        Image.fromarray(np.round(binned).astype(np.uint8)).save(
            target / "micrographs" / f"{name}.jpg", quality=95
        )
        mask = np.asarray(Image.open(source / "masks" / f"{name}.png")) > 0
        mask = mask.reshape(h // FACTOR, FACTOR, w // FACTOR, FACTOR).mean(axis=(1, 3)) >= 0.5
        Image.fromarray((mask * 255).astype(np.uint8)).save(target / "masks" / f"{name}.png")
        table = pd.read_csv(source / "coordinates" / f"{name}.csv")
        out = pd.DataFrame(
            {
                "X-Coordinate": ((table["X-Coordinate"] + 0.5) / FACTOR - 0.5).round(2),
                "Y-Coordinate": ((table["Y-Coordinate"] + 0.5) / FACTOR - 0.5).round(2),
                "Diameter": table["Diameter"] / FACTOR,
            }
        )
        out.to_csv(target / "coordinates" / f"{name}.csv", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
