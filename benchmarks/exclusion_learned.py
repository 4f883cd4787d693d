"""A small learned exclusion map against the measured one (cryopick/exclusion.py), on held-out
synthetic micrographs, so that "learn it or measure it" is decided with numbers.

Training: synthetic 1024 x 1024 micrographs with the generator's exact masks (seeds 100-199,
the same kinds of settings as the held-out set: pixel sizes 1-4 A, raw and filtered_8bit,
carbon, contamination, thick ice, aggregates, crystalline grains, empty holes and cracks, an ice
wedge with dense aggregates), cached under resources/cache/generality/exclusion_learned/. The
input is the denoised canvas made as benchmarks/exclusion.py makes it, area-downsampled so that
a particle spans PX_PER_PARTICLE pixels and normalised by median / MAD; the target is the
area-majority class of the exact masks on that grid. The model is a tiny U-Net of its own,
trained with class-weighted cross-entropy on one CPU thread for EPOCHS, fixed seeds.

Evaluation: the held-out cases of benchmarks/exclusion.py (seeds 9500+, same cache), for the
measured map, the learned one (upsampled to the canvas) and their union: IoU of any class
against the union of the exact masks, IoU per class, clean area flagged, the share of true
particles whose centres fall inside the map, CPU seconds per micrograph.

    .venv/bin/python benchmarks/exclusion_learned.py      # ~10 min on 1 thread

Writes benchmarks/results/exclusion_learned.md and .tsv (per micrograph and method).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.exclusion import FAMILIES, PLAIN, make_case, synthetic_cases  # noqa: E402
from benchmarks.generality import CACHE, real_cases  # noqa: E402
from benchmarks.tables import markdown  # noqa: E402
from cryopick.denoise import load_denoised  # noqa: E402
from cryopick.exclusion import (  # noqa: E402
    CLASSES,
    CODES,
    ExclusionSettings,
    exclusion_map,
    mask_at,
    mask_on_canvas,  # noqa: E402
)
from cryopick.io import read_coordinates  # noqa: E402

TRAIN_FOLDER = CACHE / "exclusion_learned"
OUT = ROOT / "benchmarks" / "results" / "exclusion_learned"
HAND_MASKS = ROOT / "tests" / "data" / "empiar10017_exclusion"
REAL_DIAMETER_PX, REAL_PIXEL_SIZE = 108.0, 1.77
TRAIN_SEED = 100  # seeds 100-199; the held-out cases use 9500+
PX_PER_PARTICLE = 6.0  # grid pixels per particle diameter
EPOCHS = 560  # about 3 min CPU on 1 thread; a count, not a time, so runs repeat
CROP = 64
# learned class index -> exclusion class (0 = usable)
LEARNED = ("usable", "carbon", "contamination", "thick_ice", "crystalline_ice", "empty")
# generator mask -> learned class; later entries win where masks overlap
TRUTH_ORDER = (
    ("thick_ice", 3),
    ("crystalline_ice", 4),
    ("aggregate", 2),
    ("contamination", 2),
    ("carbon", 1),
    ("crack", 5),
    ("empty", 5),
)
PLAIN_SCALES = ((1.0, 100.0), (1.5, 130.0), (2.0, 160.0), (2.5, 220.0), (3.0, 250.0), (4.0, 300.0))


def training_cases(count: int) -> list[dict]:
    """``count`` cases cycling through the plain mix (pixel sizes, both renderings) and the
    families of benchmarks/exclusion.py, with jittered pixel sizes and diameters."""
    rng = np.random.default_rng(TRAIN_SEED)
    kinds = ["plain"] * 4 + list(FAMILIES)
    cases = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        if kind == "plain":
            pixel_size, diameter = PLAIN_SCALES[rng.integers(len(PLAIN_SCALES))]
            rendering = "filtered_8bit" if index % 2 else "raw"
            extra, family = PLAIN, ""
        else:
            _, pixel_size, diameter, extra = FAMILIES[kind]
            rendering, family = "raw", kind
        jitter = float(rng.uniform(0.85, 1.15))
        cases.append(
            {
                "pixel_size": round(pixel_size * jitter, 2),
                "diameter": float(
                    np.clip(round(diameter * jitter * rng.uniform(0.9, 1.1)), 100, 320)
                ),
                "rendering": rendering,
                "index": index,
                "family": family,
                "seed": TRAIN_SEED + kinds.index(kind),
                "extra": extra,
            }
        )
    return cases


def grid_size(diameter_canvas: float, size: int) -> int:
    """Side of the grid on which a particle spans PX_PER_PARTICLE pixels (multiple of 8)."""
    return max(32, int(round(size * PX_PER_PARTICLE / diameter_canvas / 8)) * 8)


def network_input(npz: Path, diameter_angstrom: float) -> tuple[np.ndarray, object, int]:
    """(2, g, g) input (normalised image, content mask), the frame and the grid side g."""
    denoised = load_denoised(npz)
    frame = denoised.frame
    g = grid_size(diameter_angstrom / denoised.pixel_size, frame.size)
    image = cv2.resize(denoised.image.astype(np.float32), (g, g), interpolation=cv2.INTER_AREA)
    content = np.zeros((frame.size, frame.size), np.float32)
    content[: frame.content_height, : frame.content_width] = 1
    content = cv2.resize(content, (g, g), interpolation=cv2.INTER_AREA) > 0.5
    values = image[content]
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * 1.4826 + 1e-6
    image = np.where(content, np.clip((image - median) / mad, -10, 10), 0).astype(np.float32)
    return np.stack([image, content.astype(np.float32)]), frame, g


def exact_canvas(masks_path: Path, frame) -> dict[str, np.ndarray]:
    with np.load(masks_path) as data:
        return {k: mask_on_canvas(data[k], frame) for k in data.files}


def target_grid(exact: dict[str, np.ndarray], frame, g: int) -> np.ndarray:
    """Area-majority learned class per grid pixel; -100 (ignored) outside the content."""
    codes = np.zeros((frame.size, frame.size), np.uint8)
    for key, code in TRUTH_ORDER:
        if key in exact:
            codes[exact[key]] = code
    onehot = np.stack([(codes == c).astype(np.float32) for c in range(len(LEARNED))], -1)
    share = np.stack(
        [
            cv2.resize(onehot[..., c], (g, g), interpolation=cv2.INTER_AREA)
            for c in range(len(LEARNED))
        ]
    )
    content = np.zeros((frame.size, frame.size), np.float32)
    content[: frame.content_height, : frame.content_width] = 1
    inside = cv2.resize(content, (g, g), interpolation=cv2.INTER_AREA) > 0.5
    return np.where(inside, share.argmax(0), -100).astype(np.int64)


def block(c_in: int, c_out: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TinyUNet(nn.Module):
    """Three poolings and a dilated bottleneck: a receptive field of many particles on a grid
    of PX_PER_PARTICLE pixels per particle, which carbon and ice areas need."""

    def __init__(self, widths: tuple[int, ...] = (16, 24, 32, 48), classes: int = 6):
        super().__init__()
        self.down = nn.ModuleList()
        c_in = 2
        for w in widths[:-1]:
            self.down.append(block(c_in, w))
            c_in = w
        self.bottom = block(c_in, widths[-1], dilation=2)
        self.up = nn.ModuleList()
        c_in = widths[-1]
        for w in reversed(widths[:-1]):
            self.up.append(block(c_in + w, w))
            c_in = w
        self.head = nn.Conv2d(c_in, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bottom(x)
        for layer, skip in zip(self.up, reversed(skips)):
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = layer(torch.cat([x, skip], 1))
        return self.head(x)


def training_set(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    TRAIN_FOLDER.mkdir(parents=True, exist_ok=True)
    samples = []
    for case in training_cases(count):
        _, _, npz, _, masks_path = make_case(case, TRAIN_FOLDER)
        x, frame, g = network_input(npz, case["diameter"])
        samples.append((x, target_grid(exact_canvas(masks_path, frame), frame, g)))
    return samples


def crops(
    samples: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random CROP x CROP window per sample (zero / ignore padded), random flip and turn."""
    xs, ys = [], []
    for x, y in samples:
        pad = max(0, CROP - x.shape[-1])
        if pad:
            x = np.pad(x, ((0, 0), (0, pad), (0, pad)))
            y = np.pad(y, ((0, pad), (0, pad)), constant_values=-100)
        r, c = rng.integers(0, x.shape[1] - CROP + 1), rng.integers(0, x.shape[2] - CROP + 1)
        x, y = x[:, r : r + CROP, c : c + CROP], y[r : r + CROP, c : c + CROP]
        k = int(rng.integers(4))
        x, y = np.rot90(x, k, (1, 2)), np.rot90(y, k)
        if rng.random() < 0.5:
            x, y = x[:, :, ::-1], y[:, ::-1]
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(y))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def class_weights(samples: list[tuple[np.ndarray, np.ndarray]]) -> torch.Tensor:
    """Inverse square root of class frequency (rare classes count, but not overwhelmingly)."""
    counts = np.ones(len(LEARNED))
    for _, y in samples:
        counts += np.bincount(y[y >= 0], minlength=len(LEARNED))
    weights = (counts.sum() / counts) ** 0.5
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def fit_epoch(model, optimiser, loss_fn, samples, rng, batch: int = 8) -> float:
    """One pass over the samples in random order, one crop each; mean loss."""
    model.train()
    order = rng.permutation(len(samples))
    losses = []
    for start in range(0, len(order), batch):
        x, y = crops([samples[i] for i in order[start : start + batch]], rng)
        optimiser.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return float(np.mean(losses))


@torch.no_grad()
def evaluate_model(model: nn.Module, x: np.ndarray, frame) -> np.ndarray:
    """Exclusion codes (cryopick.exclusion.CODES) on the canvas from one (2, g, g) input:
    class probabilities upsampled bilinearly, argmax, nothing outside the content."""
    model.eval()
    probs = torch.softmax(model(torch.from_numpy(x)[None]), 1)[0].numpy()
    up = np.stack(
        [cv2.resize(p, (frame.size, frame.size), interpolation=cv2.INTER_LINEAR) for p in probs]
    )
    learned = up.argmax(0)
    codes = np.zeros((frame.size, frame.size), np.uint8)
    for index, name in enumerate(LEARNED[1:], start=1):
        codes[learned == index] = CODES[name]
    codes[frame.content_height :, :] = 0
    codes[:, frame.content_width :] = 0
    return codes


def train(samples, epochs: int) -> tuple[nn.Module, float, list[float]]:
    """The model after ``epochs`` of fit_epoch (AdamW, cosine rate, fixed seeds); CPU seconds;
    losses."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = TinyUNet()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(samples), ignore_index=-100)
    # cosine decay to zero, so that the result does not hang on the last step's noise. It
    # still varies from run to run more than the comparison needs: constant rate 574 / 560
    # epochs gave IoU any 0.48 / 0.45, particles lost 16% / 28%; this schedule 0.42, 18%.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    start, losses = time.process_time(), []
    for epoch in range(1, epochs + 1):
        losses.append(fit_epoch(model, optimiser, loss_fn, samples, rng))
        schedule.step()
        if epoch % 40 == 0:
            print(f"epoch {epoch}: loss {np.mean(losses[-40:]):.3f}", flush=True)
    return model, time.process_time() - start, losses


def class_mask(codes: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    return np.isin(codes, [CODES[c] for c in classes])


def truth_classes(exact: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name in LEARNED[1:]:
        keys = [k for k, code in TRUTH_ORDER if LEARNED[code] == name and k in exact]
        if keys:
            out[name] = np.logical_or.reduce([exact[k] for k in keys])
    return out


def method_row(found: dict[str, np.ndarray], truth: dict[str, np.ndarray], frame, xy) -> dict:
    """Intersection / union counts (pooled later) and particles lost for one map."""
    any_found = np.logical_or.reduce(list(found.values()))
    any_truth = np.logical_or.reduce(list(truth.values()))
    content = np.zeros_like(any_truth)
    content[: frame.content_height, : frame.content_width] = True
    row = {
        "inter_all": int((any_found & any_truth).sum()),
        "union_all": int((any_found | any_truth).sum()),
        "clean_flagged": int((any_found & ~any_truth & content).sum()),
        "clean": int((~any_truth & content).sum()),
        "particles": len(xy),
        "lost": int(mask_at(any_found, xy, frame).sum()),
    }
    for name in LEARNED[1:]:
        t = truth.get(name, np.zeros_like(any_truth))
        f = found.get(name, np.zeros_like(any_truth))
        row[f"inter_{name}"] = int((f & t).sum())
        row[f"union_{name}"] = int((f | t).sum())
    return row


def heldout_rows(model: nn.Module, confusion: dict[str, np.ndarray]) -> list[dict]:
    """Rows per micrograph and method; adds pixel counts (true class x found code) to
    ``confusion`` per method, pooled over the set."""
    folder = CACHE / "exclusion"
    rows = []
    for case in synthetic_cases(per_scale=3):
        name, mrc, npz, truth_path, masks_path = make_case(case, folder)
        xy = read_coordinates(truth_path)[["x", "y"]].to_numpy(float)
        start = time.process_time()
        measured = exclusion_map(str(mrc), str(npz), case["diameter"], ExclusionSettings())
        t_measured = time.process_time() - start
        start = time.process_time()
        x, frame, _ = network_input(npz, case["diameter"])
        learned = evaluate_model(model, x, frame)
        t_learned = time.process_time() - start
        exact = exact_canvas(masks_path, frame)
        truth = truth_classes(exact)
        true_codes = np.zeros(learned.shape, np.int64)
        for key, code in TRUTH_ORDER:
            if key in exact:
                true_codes[exact[key]] = code
        found_codes = {
            "measured": measured.codes,
            "learned": learned,
            "union": np.where(measured.codes > 0, measured.codes, learned),
        }
        for method, codes in found_codes.items():
            counts = np.bincount(
                true_codes.ravel() * 7 + codes.ravel().astype(np.int64), minlength=6 * 7
            )
            confusion[method] = confusion.get(method, 0) + counts.reshape(6, 7)
        names = LEARNED[1:]
        maps = {
            "measured": {n: class_mask(measured.codes, (n,)) for n in names},
            "learned": {n: class_mask(learned, (n,)) for n in names},
        }
        maps["union"] = {n: maps["measured"][n] | maps["learned"][n] for n in names}
        # the measured map's border class counts as excluded area too
        border = class_mask(measured.codes, ("border",))
        maps["measured"]["border"] = border
        maps["union"]["border"] = border
        seconds = {"measured": t_measured, "learned": t_learned, "union": t_measured + t_learned}
        for method, found in maps.items():
            row = {"micrograph": name, "family": case["family"] or "plain", "method": method}
            row.update(method_row(found, truth, frame, xy))
            row["seconds"] = seconds[method]
            rows.append(row)
        print(
            name,
            {m: round(r["inter_all"] / max(r["union_all"], 1), 3) for m, r in zip(maps, rows[-3:])},
            flush=True,
        )
    return rows


def pooled(group: pd.DataFrame) -> dict:
    """Pixel-pooled IoUs (sum of intersections over sum of unions; "-" where no truth and
    nothing found), shares of particles lost and clean area flagged, mean seconds."""
    out = {
        "micrographs": len(group),
        "IoU any": group["inter_all"].sum() / max(group["union_all"].sum(), 1),
    }
    for name in LEARNED[1:]:
        union = group[f"union_{name}"].sum()
        out[f"IoU {name}"] = group[f"inter_{name}"].sum() / union if union else "-"
    out["clean flagged"] = f"{group['clean_flagged'].sum() / max(group['clean'].sum(), 1):.1%}"
    out["particles lost"] = (
        f"{group['lost'].sum()} of {group['particles'].sum()} "
        f"({group['lost'].sum() / max(group['particles'].sum(), 1):.1%})"
    )
    out["s / micrograph"] = float(group["seconds"].mean())
    return out


def tables(rows: pd.DataFrame) -> str:
    parts = []
    table = [{"method": m, **pooled(g)} for m, g in rows.groupby("method", sort=False)]
    parts.append("## Pooled over the held-out set\n\n" + markdown(pd.DataFrame(table)))
    per_family = [
        {"family": f, "method": m, **pooled(g)}
        for (f, m), g in rows.groupby(["family", "method"], sort=False)
    ]
    parts.append("## Per family\n\n" + markdown(pd.DataFrame(per_family)))
    return "\n\n".join(parts)


def confusion_table(confusion: dict[str, np.ndarray]) -> str:
    """Where each true class's pixels go, per method (share of that class's pixels): shows
    whether an area is found under the wrong name, or not at all."""
    found = ["none"] + [CLASSES[c] for c in sorted(CLASSES)]
    parts = []
    for method, counts in confusion.items():
        shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        table = pd.DataFrame(
            [
                {"true class": LEARNED[t], "pixels": int(counts[t].sum())}
                | {f: f"{shares[t, i]:.0%}" for i, f in enumerate(found)}
                for t in range(len(LEARNED))
                if counts[t].sum()
            ]
        )
        parts.append(f"### {method}\n\n" + markdown(table))
    return "## Confusion, pooled (row: true class; columns: found class)\n\n" + "\n\n".join(parts)


def real_rows(model: nn.Module) -> list[dict]:
    """EMPIAR-10017: labelled particles inside each map, inside and outside the hand-drawn
    areas (tests/data/empiar10017_exclusion: 1 carbon, 2 contamination, 3 border). The
    labels cover particles on usable ice, so a particle lost outside the drawn areas is a loss."""
    rows = []
    diameter = REAL_DIAMETER_PX * REAL_PIXEL_SIZE
    for name, micrograph, denoised, truth_path in real_cases():
        xy = read_coordinates(truth_path)[["x", "y"]].to_numpy(float)
        start = time.process_time()
        measured = exclusion_map(str(micrograph), str(denoised), diameter, ExclusionSettings())
        t_measured = time.process_time() - start
        start = time.process_time()
        x, frame, _ = network_input(denoised, diameter)
        learned = evaluate_model(model, x, frame)
        t_learned = time.process_time() - start
        hand = cv2.imread(str(HAND_MASKS / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        drawn = mask_on_canvas(hand > 0, frame)
        maps = {"measured": measured.codes > 0, "learned": learned > 0}
        maps["union"] = maps["measured"] | maps["learned"]
        seconds = {"measured": t_measured, "learned": t_learned, "union": t_measured + t_learned}
        inside = mask_at(drawn, xy, frame)
        for method, found in maps.items():
            lost = mask_at(found, xy, frame)
            rows.append(
                {
                    "micrograph": name,
                    "method": method,
                    "drawn_fraction": float(drawn.mean()),
                    "found_fraction": float(found.mean()),
                    "inter_drawn": int((found & drawn).sum()),
                    "union_drawn": int((found | drawn).sum()),
                    "particles": len(xy),
                    "inside_drawn": int(inside.sum()),
                    "lost": int(lost.sum()),
                    "lost_outside_drawn": int((lost & ~inside).sum()),
                    "seconds": seconds[method],
                }
            )
    return rows


def real_table(rows: pd.DataFrame) -> str:
    table = []
    for method, g in rows.groupby("method", sort=False):
        table.append(
            {
                "method": method,
                "micrographs": len(g),
                "IoU with drawn": g["inter_drawn"].sum() / max(g["union_drawn"].sum(), 1),
                "area found": f"{g['found_fraction'].mean():.1%}",
                "area drawn": f"{g['drawn_fraction'].mean():.1%}",
                "particles lost": f"{g['lost'].sum()} of {g['particles'].sum()}",
                "lost outside drawn": f"{g['lost_outside_drawn'].sum()} of "
                f"{(g['particles'] - g['inside_drawn']).sum()}",
                "s / micrograph": float(g["seconds"].mean()),
            }
        )
    return "## EMPIAR-10017 (real, hand-drawn masks)\n\n" + markdown(pd.DataFrame(table))


def main(count: int = 40) -> None:
    torch.set_num_threads(1)
    start = time.time()
    samples = training_set(count)
    print(f"training set: {len(samples)} micrographs, {time.time() - start:.0f} s", flush=True)
    model, seconds, losses = train(samples, EPOCHS)
    final = float(np.mean(losses[-40:]))
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: {parameters} parameters, {EPOCHS} epochs, {seconds:.0f} s, loss {final:.3f}")
    confusion: dict[str, np.ndarray] = {}
    rows = pd.DataFrame(heldout_rows(model, confusion))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(OUT.with_suffix(".tsv"), sep="\t", index=False)
    header = (
        "# Learned exclusion map against the measured one (benchmarks/exclusion_learned.py)\n\n"
        f"Training: {len(samples)} synthetic micrographs (seeds 100-199), grid of "
        f"{PX_PER_PARTICLE:g} px per particle, tiny U-Net of {parameters} parameters, "
        f"{EPOCHS} epochs in {seconds:.0f} s CPU on 1 thread (loss of the last 40: {final:.3f}). "
        "Held-out: the synthetic cases of benchmarks/exclusion.py. IoU pixel-pooled on the "
        "canvas; contamination includes aggregates, empty includes cracks; the measured "
        "map's border class counts as excluded. Union = measured where it has a class, "
        "else learned. Seconds: CPU, from the cached denoised canvas (measured reads the "
        "micrograph too).\n\n"
    )
    real = pd.DataFrame(real_rows(model))
    real.to_csv(OUT.with_name(OUT.name + "_real.tsv"), sep="\t", index=False)
    text = (
        header
        + tables(rows)
        + "\n\n"
        + confusion_table(confusion)
        + "\n\n"
        + real_table(real)
        + "\n"
    )
    OUT.with_suffix(".md").write_text(text)
    print(text)
    print(f"total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
