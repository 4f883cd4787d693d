"""The SAM stage on a tiny SAM built from segment_anything's own classes with random weights."""

import gzip
import logging

import numpy as np
import pytest
import torch

from cryopick import sam
from cryopick.io import InputError
from tests.conftest import run_workflow


def disc_probability(size: int = 96, centres=((24, 24), (70, 30), (50, 72)), radius: int = 9):
    yy, xx = np.mgrid[:size, :size]
    prob = np.zeros((size, size), dtype=np.uint8)
    for cy, cx in centres:
        prob[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 230
    return prob


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return sam.save_tiny_sam_checkpoint(tmp_path_factory.mktemp("sam") / "tiny_sam.pth", seed=3)


def open_settings(checkpoint, **overrides) -> sam.SamSettings:
    """Random weights predict low IoU and stability: thresholds off so masks come out."""
    values = dict(
        model_type="tiny",
        checkpoint=str(checkpoint),
        device="cpu",
        points_per_side=4,
        points_per_batch=8,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
    )
    values.update(overrides)
    return sam.SamSettings(**values)


def test_rle_matches_segment_anything_encoding() -> None:
    sam.segment_anything()  # the torchvision stand-in, where torchvision does not import
    from segment_anything.utils.amg import mask_to_rle_pytorch, rle_to_mask

    rng = np.random.default_rng(0)
    masks = [
        rng.random((7, 5)) > 0.5,
        np.ones((4, 6), bool),
        np.zeros((3, 3), bool),
        np.eye(5, dtype=bool),
    ]
    masks[0][0, 0] = True  # starts with foreground: a leading zero-length run
    for mask in masks:
        counts = sam.rle_encode(mask)
        reference = mask_to_rle_pytorch(torch.as_tensor(mask)[None])[0]
        assert counts == reference["counts"]
        np.testing.assert_array_equal(sam.rle_decode(counts, mask.shape), mask)
        np.testing.assert_array_equal(
            rle_to_mask({"size": list(mask.shape), "counts": counts}), mask
        )
    with pytest.raises(ValueError, match="sum"):
        sam.rle_decode([3, 2], (2, 2))


def test_sam_input_is_min_max_uint8_three_channels() -> None:
    prob = np.array([[0.2, 0.4], [0.6, 0.2]], dtype=np.float32)
    image = sam.sam_input_from_probability(prob)
    assert image.shape == (2, 2, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[:, :, 0], [[0, 127], [255, 0]])  # 127.49 truncated
    np.testing.assert_array_equal(image[:, :, 0], image[:, :, 2])
    assert not sam.sam_input_from_probability(np.full((4, 4), 0.7)).any()


def test_checkpoint_round_trip_gives_the_same_model(tiny_checkpoint) -> None:
    built = sam.build_tiny_sam(seed=3)
    loaded = sam.load_sam("tiny", tiny_checkpoint, "cpu")
    assert 50_000 < sum(p.numel() for p in loaded.parameters()) < 300_000
    for (name, a), (_, b) in zip(built.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    torch.testing.assert_close(loaded.pixel_mean, built.pixel_mean)


def test_wrong_model_type_is_a_clear_error(tiny_checkpoint, tmp_path) -> None:
    with pytest.raises(InputError) as info:
        sam.load_sam("vit_b", tiny_checkpoint)
    message = str(info.value)
    assert str(tiny_checkpoint) in message and "tiny" in message and "vit_b" in message
    # a vit_b-shaped checkpoint configured as vit_h names vit_b (only shapes are read)
    fake_b = tmp_path / "sam_vit_b.pth"
    torch.save(
        {
            "image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 1, 1),
            **{f"image_encoder.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(12)},
        },
        fake_b,
    )
    with pytest.raises(InputError, match="holds a vit_b model.*set sam.model_type: vit_b"):
        sam.load_sam("vit_h", fake_b)
    # right shapes, missing weights: still an InputError, not a traceback
    with pytest.raises(InputError, match="do not fit a vit_b"):
        sam.load_sam("vit_b", fake_b)


def test_unusable_checkpoints_are_input_errors(tmp_path, tiny_checkpoint) -> None:
    with pytest.raises(InputError, match="does not exist"):
        sam.load_sam("vit_h", tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        sam.load_sam("vit_h", garbage)
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(2)}, other)
    with pytest.raises(InputError, match="not a Segment Anything checkpoint"):
        sam.load_sam("vit_h", other)
    with pytest.raises(InputError, match="model_type 'vit_x'"):
        sam.load_sam("vit_x", tiny_checkpoint)
    # a checkpoint wrapped as {"model": state_dict} (common in fine-tuning code) loads
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": torch.load(tiny_checkpoint, weights_only=True)}, wrapped)
    assert sam.load_sam("tiny", wrapped) is not None


def test_device_setting() -> None:
    from cryopick.device import resolve_device

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no usable CUDA"):
            resolve_device("cuda")
    with pytest.raises(InputError):
        resolve_device("abacus")


def test_generated_masks_are_consistent_and_round_trip(tiny_checkpoint, tmp_path) -> None:
    settings = open_settings(tiny_checkpoint)
    generator = sam.make_generator(sam.load_sam("tiny", tiny_checkpoint), settings)
    image = sam.sam_input_from_probability(disc_probability())
    records = sam.generate_masks(generator, image)
    assert records, "with thresholds off the generator returns masks"
    for record in records:
        mask = record.mask()
        assert mask.shape == (96, 96) and record.area == int(mask.sum()) > 0
        rows, cols = np.nonzero(mask)
        # SAM's XYWH: first column/row and last-minus-first
        assert record.bbox == (
            cols.min(),
            rows.min(),
            cols.max() - cols.min(),
            rows.max() - rows.min(),
        )
        assert 0 <= record.stability_score <= 1
    path = tmp_path / "m.json.gz"
    sam.save_masks(path, records, image.shape[:2], {"model_type": "tiny"})
    assert sam.load_masks(path) == records
    first = path.read_bytes()
    sam.save_masks(path, records, image.shape[:2], {"model_type": "tiny"})
    assert path.read_bytes() == first  # byte-stable: no timestamp in the gzip header
    # generator settings reach the generator
    strict = sam.generate_masks(
        sam.make_generator(
            sam.load_sam("tiny", tiny_checkpoint),
            open_settings(tiny_checkpoint, pred_iou_thresh=0.999),
        ),
        image,
    )
    assert all(r.predicted_iou > 0.999 for r in strict) and len(strict) < len(records)


def test_constant_map_gives_no_masks(tiny_checkpoint) -> None:
    generator = sam.make_generator(
        sam.load_sam("tiny", tiny_checkpoint), open_settings(tiny_checkpoint)
    )
    image = sam.sam_input_from_probability(np.zeros((64, 64), np.uint8))
    assert sam.generate_masks(generator, image) == []


def test_run_sam_writes_one_file_per_map(tiny_checkpoint, tmp_path, caplog) -> None:
    inputs, outputs = [], []
    for i, centres in enumerate([((20, 20), (60, 60)), ((30, 70),)]):
        path = tmp_path / f"unet/mic{i}.npz"
        path.parent.mkdir(exist_ok=True)
        np.savez_compressed(path, probability=disc_probability(80, centres))
        inputs.append(path)
        outputs.append(tmp_path / f"sam/mic{i}.json.gz")
    with caplog.at_level(logging.INFO, logger="cryopick.sam"):
        timings = sam.run_sam(inputs, outputs, open_settings(tiny_checkpoint), threads=1)
    assert timings["device"] == "cpu"
    assert sum("loaded on cpu" in r.message for r in caplog.records) == 1  # loaded once
    for out in outputs:
        records = sam.load_masks(out)
        assert records and records[0].size == (80, 80)
    with pytest.raises(InputError, match="2 probability maps but 1"):
        sam.run_sam(inputs, outputs[:1], open_settings(tiny_checkpoint))
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(gzip.compress(b'{"format": "other"}'))
    with pytest.raises(InputError, match="not a cryopick-sam-masks"):
        sam.load_masks(bad)


def test_unavailable_checkpoint_message(tmp_path, tiny_checkpoint) -> None:
    assert sam.checkpoint_available(tiny_checkpoint)
    assert not sam.checkpoint_available("")
    assert not sam.checkpoint_available(tmp_path)  # a folder is not a checkpoint
    message = sam.unavailable_message(tmp_path / "sam_vit_h_4b8939.pth")
    assert "skipped" in message and "sam_vit_h_4b8939.pth" in message
    assert "sam.checkpoint" in sam.unavailable_message(None)


def test_settings_from_config() -> None:
    settings = sam.SamSettings.from_config({"model_type": "vit_b", "points_per_side": 16})
    assert settings.points_per_side == 16 and settings.pred_iou_thresh == 0.88
    assert "model_type" not in settings.generator_kwargs()
    with pytest.raises(InputError, match="model_type"):
        sam.SamSettings.from_config({"model_type": "vit_q"})
    with pytest.raises(InputError, match=r"unknown sam setting.*'unrelated'"):
        sam.SamSettings.from_config({"model_type": "vit_b", "unrelated": 1})


# ----------------------------------------------------------------------------------------------
# the real rules, run by snakemake
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sam_and_crf_rules_end_to_end(tmp_path, tiny_checkpoint) -> None:
    """The real sam and crf rules on two tiny micrographs, with hand-made U-Net maps placed
    where the unet stage writes them."""
    import pandas as pd
    from PIL import Image

    from cryopick.batching import write_completion
    from cryopick.denoise import frame_for
    from cryopick.io import read_coordinates
    from cryopick.probability_maps import save_prediction
    from tests.conftest import write_cryoppp

    rng = np.random.default_rng(1)
    names = ["mic_a", "mic_b"]
    (tmp_path / "mics").mkdir()
    (tmp_path / "truth").mkdir()
    for i, name in enumerate(names):
        centres = [(40 + 60 * i, 50), (130, 140)]
        truth = disc_probability(192, centres, radius=18) > 0
        image = np.clip(150 - 60 * truth + rng.normal(0, 10, truth.shape), 0, 255)
        Image.fromarray(image.astype(np.uint8)).save(tmp_path / "mics" / f"{name}.png")
        write_cryoppp(
            tmp_path / "truth" / f"{name}.csv",
            np.array([(cx, cy) for cy, cx in centres], float),
            36,
        )
        # both micrographs are in the data set's first batch (rules/batching.smk)
        unet = tmp_path / "results/t/unet/batch_00000" / f"{name}.npz"
        unet.parent.mkdir(parents=True, exist_ok=True)
        half = [(cy // 2, cx // 2) for cy, cx in centres]
        save_prediction(
            unet,
            {
                "mask": disc_probability(96, half, radius=11) / 255.0,
                "centre": disc_probability(96, half, radius=3) / 255.0,
            },
            frame_for((192, 192), 96),
        )
    write_completion(tmp_path / "results/t/unet/batch_00000", names)  # the batch is whole
    config = {
        "datasets": {
            "t": {
                "micrographs": str(tmp_path / "mics/*.png"),
                "pixel_size": 2.0,
                "particle_diameter": 72,
                "ground_truth": str(tmp_path / "truth"),
            }
        },
        "denoise": {"size": 96},
        "baseline": {"edge_margin": 0.3},
        "unet": {"enabled": True, "threshold": 0.5, "edge_margin": 0.3},
        "sam": {
            "checkpoint": str(tiny_checkpoint),
            "model_type": "tiny",
            "device": "cpu",
            "points_per_side": 4,
            "points_per_batch": 8,
            "pred_iou_thresh": 0.0,
            "stability_score_thresh": 0.0,
        },
        "postprocess": {"min_predicted_iou": 0.0},
        "crf": {"enabled": True, "compat": 3},
        "crf_picks": {"edge_margin": 0.3},
        "picks": {"source": "crf", "edge_margin": 0.3},
    }
    targets = ["results/t/sam/batch_00000", "results/t/crf/batch_00000"]
    targets += ["results/t/metrics/summary.tsv"]
    # the hand-made maps stand for the U-Net's: its rule is left out of this run
    targets += [
        "--allowed-rules",
        "denoise",
        "sam_masks",
        "crf",
        "pick_crf",
        "pick_sam",
        "pick_sam_raw",
        "pick_baseline",
        "pick_unet",
        "picks",
        "metrics",
    ]
    run = run_workflow(tmp_path, config, *targets)
    assert "Segment Anything stage is skipped" not in run.stderr
    for name in names:
        records = sam.load_masks(tmp_path / f"results/t/sam/batch_00000/{name}.json.gz")
        assert records and records[0].size == (96, 96)
        with np.load(tmp_path / f"results/t/crf/batch_00000/{name}.npz") as refined:
            assert refined["mask"].shape == (96, 96) and refined["mask"].any()
        # one raw pick per mask; the CRF picks (the final source) find both particles
        raw = read_coordinates(tmp_path / f"results/t/sam_raw_picks/batch_00000/{name}.star")
        assert len(raw) == len(records)
        crf_picks = read_coordinates(tmp_path / f"results/t/crf_picks/batch_00000/{name}.star")
        assert len(crf_picks) == 2 and crf_picks["score"].between(0.5, 1).all()
        assert len(read_coordinates(tmp_path / f"results/t/picks/{name}.star")) == 2
    summary = pd.read_csv(tmp_path / "results/t/metrics/summary.tsv", sep="\t")
    assert list(summary["stage"]) == [
        "baseline",
        "unet",
        "unet+crf",
        "sam",
        "sam+postprocessing",
        "final",
    ]
    crf_row = summary.set_index("stage").loc["unet+crf"]
    assert crf_row["f1"] == 1.0 and summary.set_index("stage").loc["final", "f1"] == 1.0
    log = (tmp_path / "results/t/logs/sam_masks/batch_00000.log").read_text()
    assert log.count("loaded on cpu") == 1, "one model load for the whole batch"
    assert all(name in log for name in names)
    assert (tmp_path / "results/t/benchmarks/sam_masks/batch_00000.tsv").is_file()
    # nothing left to do: a second run changes nothing
    again = run_workflow(tmp_path, config, "-n", *targets)
    assert "Nothing to be done" in again.stdout + again.stderr

    # a checkpoint of the wrong model type fails the job with one clear line
    config["sam"]["model_type"] = "vit_b"
    # (the target first: after --forcerun it would be read as one more rule to force)
    wrong = run_workflow(tmp_path, config, targets[0], "--forcerun", "sam_masks", check=False)
    assert wrong.returncode != 0, wrong.stderr[-2000:]
    log = (tmp_path / "results/t/logs/sam_masks/batch_00000.log").read_text()
    assert "holds a tiny model" in log and "Traceback" not in log


@pytest.mark.slow
def test_missing_checkpoint_is_announced_once(tmp_path) -> None:
    """The bundled demo configuration with a checkpoint path that does not exist."""
    config = {"sam": {"checkpoint": str(tmp_path / "sam_vit_h_4b8939.pth")}}
    run = run_workflow(tmp_path, config, "-n")
    assert run.stderr.count("Segment Anything stage is skipped") == 1
