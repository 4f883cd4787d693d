"""Leave-one-type-out training configs of the general recipe (issue 14): the corpus of
models/unet_general.yaml with one specimen type taken out of every synthetic set, so that the
model trained on it is scored on that type alone by benchmarks/generality.py --kinds TYPE.

Every set is renamed ``{set}_no_{type}`` (and its data set ``gen_..._no_{type}``), so the
shipped model's training sets under results/synthetic/ are never overwritten; a set left
without any type is dropped. Seeds stay those of the recipe, the real EMPIAR-10017 labels stay
in (they are beta-galactosidase, not a synthetic type).

    python benchmarks/leave_one_type_out.py ring    # writes benchmarks/configs/loto_ring.yaml
    snakemake --cores 2 results/unet_training/loto_ring/model.pt \\
        --configfile benchmarks/configs/loto_ring.yaml
    python benchmarks/generality.py --tag loto_ring --kinds ring \\
        --model loto_ring=results/unet_training/loto_ring/model.pt
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryopick.synthetic_settings import ALL_VOLUME_KINDS, VOLUME_KINDS  # noqa: E402

RECIPE = ROOT / "models" / "unet_general.yaml"
CONFIGS = ROOT / "benchmarks" / "configs"


def without_type(recipe: dict, kind: str) -> dict:
    """The recipe's config with ``kind`` taken out of every synthetic set."""
    if kind not in ALL_VOLUME_KINDS:
        raise SystemExit(f"unknown type {kind!r}; known: {', '.join(ALL_VOLUME_KINDS)}")
    config = copy.deepcopy(recipe)
    sets, datasets = {}, {}
    renamed = {}
    for name, settings in config["synthetic"].items():
        kinds = [k for k in settings.get("volume_kinds", VOLUME_KINDS) if k != kind]
        if not kinds:
            continue
        sets[f"{name}_no_{kind}"] = {**settings, "volume_kinds": kinds}
        renamed[name] = f"{name}_no_{kind}"
    for name, entry in config["datasets"].items():
        source = entry.get("synthetic")
        if source is None:
            datasets[name] = entry
        elif source in renamed:
            datasets[f"{name}_no_{kind}"] = {**entry, "synthetic": renamed[source]}
    train = config["unet"]["train"]
    keep = set(datasets)
    train["datasets"] = [
        d if d in keep else f"{d}_no_{kind}"
        for d in train["datasets"]
        if d in keep or f"{d}_no_{kind}" in keep
    ]
    train["dataset_weights"] = {
        (d if d in keep else f"{d}_no_{kind}"): w
        for d, w in train.get("dataset_weights", {}).items()
        if d in keep or f"{d}_no_{kind}" in keep
    }
    train["name"] = f"loto_{kind}"
    config["synthetic"], config["datasets"] = sets, datasets
    return config


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kinds", nargs="+", choices=ALL_VOLUME_KINDS)
    args = parser.parse_args(argv)
    recipe = yaml.safe_load(RECIPE.read_text())
    for kind in args.kinds:
        path = CONFIGS / f"loto_{kind}.yaml"
        header = (
            f"# models/unet_general.yaml without the {kind} type (written by "
            f"benchmarks/leave_one_type_out.py {kind}; do not edit by hand)\n"
        )
        path.write_text(header + yaml.safe_dump(without_type(recipe, kind), sort_keys=False))
        print(path)


if __name__ == "__main__":
    main()
