"""Unit checks of the failure modes of issue 13 (each failed before its fix); the bad-input
corpus driven through the real workflow is tests/test_bad_inputs.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cryopick.device import mixed_precision_choice, native_bfloat16
from cryopick.io import InputError, read_coordinates, read_micrograph, write_mrc
from cryopick.metrics import checked_labels


def test_precision_follows_what_the_device_computes_natively() -> None:
    """bfloat16 autocast is emulated, about 20x slower, on CPUs without AVX512-BF16 / AMX."""
    cpu = torch.device("cpu")
    assert native_bfloat16(cpu, {"avx2", "avx512f"}) is False
    assert native_bfloat16(cpu, {"avx2", "avx512_bf16"}) is True
    assert native_bfloat16(cpu, {"amx_bf16"}) is True
    use, why = mixed_precision_choice("auto", cpu, {"avx2", "avx512f"})
    assert use is False and why.startswith("float32 (auto:")
    use, why = mixed_precision_choice("auto", cpu, {"avx512_bf16"})
    assert use is True and "natively" in why
    # an explicit choice is kept, whatever the device
    assert mixed_precision_choice(True, cpu, set())[0] is True
    assert mixed_precision_choice(False, cpu, {"avx512_bf16"})[0] is False


def test_training_config_refuses_a_precision_that_is_not_one() -> None:
    from cryopick.training import TrainingConfig

    assert TrainingConfig().mixed_precision == "auto"
    with pytest.raises(InputError, match="mixed_precision must be true, false or auto"):
        TrainingConfig(mixed_precision="fast")


@pytest.mark.parametrize(
    "header, row",
    [
        ("X-Coordinate,Y-Coordinate,Diameter", "10,20,30"),  # CryoPPP
        ("x,y", "10,20"),
        ("X,Y", "10,20"),
        ("x_coord,y_coord,diameter", "10,20,30"),
        ("micrograph,x,y,score", "m,10,20,0.9"),
        ("rlnCoordinateX,rlnCoordinateY", "10,20"),
        (None, "10,20"),  # no header at all
    ],
)
def test_label_csv_accepts_the_common_spellings(tmp_path: Path, header, row) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(("" if header is None else header + "\n") + row + "\n" + row + "\n")
    table = read_coordinates(path)
    assert table["x"].tolist() == [10.0, 10.0] and table["y"].tolist() == [20.0, 20.0]


def test_label_csv_without_coordinates_names_the_file_and_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("a,b\nq,r\n")
    with pytest.raises(InputError, match=r"labels.csv: coordinate CSV needs an x and a y column"):
        read_coordinates(path)


def _labels(x, y) -> pd.DataFrame:
    return pd.DataFrame({"x": x, "y": y, "score": 1.0, "diameter": np.nan})


def test_labels_of_another_frame_are_refused_with_their_extent() -> None:
    """An unbinned micrograph's coordinates against a 4x binned one: scored, they would be
    misses (F1 0.02); refused, they name the problem."""
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 4096, 100), rng.uniform(0, 4096, 100)
    with pytest.raises(InputError, match=r"m.csv: \d+ of 100 labels lie outside the 1024 x 1024"):
        checked_labels("m.csv", _labels(x, y), (1024, 1024))
    lines: list[str] = []
    x, y = x / 4, y / 4
    x[:2], y[:2] = 1500.0, 1500.0  # two strays in labels of the right frame are dropped
    kept = checked_labels("m.csv", _labels(x, y), (1024, 1024), lines.append)
    assert len(kept) == 98 and "2 of 100 labels outside" in lines[0]
    with pytest.raises(InputError, match="no finite x/y"):
        checked_labels("m.csv", _labels([1.0, np.nan], [1.0, 2.0]), (1024, 1024))


def test_a_dangling_symlink_is_named_with_its_target(tmp_path: Path) -> None:
    link = tmp_path / "mic.mrc"
    os.symlink(tmp_path / "gone" / "mic.mrc", link)
    with pytest.raises(InputError, match=r"mic.mrc: dangling symbolic link \(its target .*gone"):
        read_micrograph(link)
    with pytest.raises(InputError, match=r"other.mrc: micrograph file does not exist"):
        read_micrograph(tmp_path / "other.mrc")


def test_a_movie_stack_warns_that_only_its_first_frame_is_used(tmp_path: Path, caplog) -> None:
    import mrcfile

    path = tmp_path / "movie.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.random.default_rng(0).normal(size=(3, 256, 256)).astype(np.float32))
    with caplog.at_level("WARNING"):
        micrograph = read_micrograph(path)
    assert micrograph.image.shape == (256, 256)
    assert "movie.mrcs: a stack of 3 frames; only the first is used" in caplog.text


def test_an_image_too_small_for_a_micrograph_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tiny.mrc"
    write_mrc(path, np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32), 2.0)
    with pytest.raises(InputError, match=r"tiny.mrc: image of 32 x 32 pixels is too small"):
        read_micrograph(path)


def test_the_network_sees_the_content_of_a_long_micrograph_not_its_padding() -> None:
    """A 4096 x 512 micrograph fills an eighth of its square canvas: the forward pass runs on
    that eighth (it cost 20x a square one's time when the padding went through the network)."""
    from cryopick.denoise import frame_for
    from cryopick.inference import predict
    from cryopick.unet import AttentionUNet

    torch.manual_seed(0)
    model = AttentionUNet(1, 4, 2, ("mask", "centre"))
    frame = frame_for((512, 4096), 256)
    assert (frame.content_height, frame.content_width) == (32, 256)
    canvas = np.random.default_rng(0).integers(0, 255, (256, 256)).astype(np.uint8)
    seen: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    (maps,) = predict(model, [canvas], [frame.content_mask], scale=2.0, device="cpu")
    assert seen == [(1, 1, 64, 512)]  # the content, resampled 2x; not 512 x 512
    for prob in maps.values():
        assert prob.shape == (256, 256) and not prob[32:].any() and prob[:32].all()


def test_unet_memory_is_estimated_before_it_runs_and_bounded() -> None:
    """particle_diameter 27 (pixels typed for Angstrom) on the demo resampled each canvas 7x
    and grew the job to 23.8 GB until the kernel killed it; now the batch shrinks to fit the
    limit, and a micrograph that alone exceeds it is refused with the setting to check."""
    from cryopick.denoise import frame_for
    from cryopick.inference import memory_batch_size, network_memory_gb

    frame = frame_for((4096, 4096), 1024)
    assert 0.6 < network_memory_gb(frame, 1.0) < 0.75
    assert memory_batch_size([(frame, 1.0)] * 4, 4, 4.0, 16, "x") == 4
    assert memory_batch_size([(frame, 1.0)] * 4, 4, 2.0, 16, "x") == 2
    assert memory_batch_size([(frame, 1.0)] * 4, 4, None, 16, "x") == 4
    with pytest.raises(InputError, match=r"demo: the U-Net would resample each micrograph 7.10x"):
        memory_batch_size([(frame, 7.1)], 4, 4.0, 16, "demo")


def test_picks_of_micrographs_that_left_the_data_set_are_moved_aside(tmp_path: Path) -> None:
    from cryopick.picks_index import move_stale_picks, write_coordinate_index

    picks, csv = tmp_path / "picks", tmp_path / "picks_csv"
    for folder in (picks, csv):
        folder.mkdir()
    for name in ("a.001", "b", "old"):
        (picks / f"{name}.star").write_text("x")
        (csv / f"{name}.csv").write_text("x")
    moved = move_stale_picks([picks, csv], ["a.001", "b"], tmp_path / "stale")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in moved) == [
        "stale/picks/old.star",
        "stale/picks_csv/old.csv",
    ]
    assert sorted(p.name for p in picks.iterdir()) == ["a.001.star", "b.star"]
    index = tmp_path / "autopick.star"
    write_coordinate_index(
        index, {"a.001": "m/a.001.mrc", "b": "m/b.mrc"}, {"b": "p/b.star", "a.001": "p/a.star"}
    )
    import starfile

    table = starfile.read(index)
    assert table["rlnMicrographName"].tolist() == ["m/a.001.mrc", "m/b.mrc"]
    assert table["rlnMicrographCoordinates"].tolist() == ["p/a.star", "p/b.star"]


def test_denoising_works_on_the_content_of_a_long_micrograph(monkeypatch) -> None:
    """The chain sees the 256 x 32 content of a 4096 x 512 micrograph, not the 256^2 canvas."""
    import cryopick.denoise as denoise

    seen: list[tuple[int, ...]] = []
    chain = denoise._denoise_chain
    monkeypatch.setattr(denoise, "_denoise_chain", lambda c, s: seen.append(c.shape) or chain(c, s))
    image = np.random.default_rng(0).normal(size=(512, 4096)).astype(np.float32)
    frame = denoise.frame_for(image.shape, 256)
    canvas = denoise.denoise_image(image, denoise.DenoiseSettings(size=256), frame)
    assert seen == [(32, 256)] and canvas.shape == (256, 256)
    assert len(np.unique(canvas[32:])) == 1  # the padding: one value, the content's median


def test_published_picks_are_the_batch_artifact_and_a_failed_one_is_withdrawn(
    tmp_path: Path,
) -> None:
    from cryopick.picks_index import publish, withdraw

    artifact = tmp_path / "final_picks" / "batch_00000" / "m.star"
    artifact.parent.mkdir(parents=True)
    artifact.write_text("new picks\n")
    published = tmp_path / "picks" / "m.star"
    published.parent.mkdir()
    published.write_text("an earlier run's picks\n")
    publish(artifact, published)
    assert published.read_text() == "new picks\n"
    assert published.stat().st_ino == artifact.stat().st_ino  # a hard link: no second copy
    assert [p.name for p in published.parent.iterdir()] == ["m.star"]  # no temporary left
    # the micrograph fails in a later run: its old picks leave the folder, kept in stale/
    moved = withdraw(published, tmp_path / "stale")
    assert moved == tmp_path / "stale" / "picks" / "m.star" and moved.read_text() == "new picks\n"
    assert not published.exists() and withdraw(published, tmp_path / "stale") is None
