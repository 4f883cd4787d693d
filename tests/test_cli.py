import subprocess
import sys

from cryopick.io import read_coordinates, write_mrc
from tests.conftest import REPO, disc_micrograph, write_cryoppp


def _cli(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "cryopick", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_cli_chain_and_refusal_to_overwrite(tmp_path):
    image, centres = disc_micrograph((400, 500), n=12, diameter=40, seed=5)
    write_mrc(tmp_path / "m.mrc", image, 2.0)
    write_cryoppp(tmp_path / "m.csv", centres, 40)
    (tmp_path / "picks").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "m.csv").rename(tmp_path / "labels" / "m.csv")
    _cli("denoise", str(tmp_path / "m.mrc"), str(tmp_path / "m.npz"), "--size", "256")
    _cli(
        "pick-baseline",
        str(tmp_path / "m.npz"),
        str(tmp_path / "picks" / "m.star"),
        "--diameter",
        "80",
        "--threshold",
        "3",
    )
    assert 10 <= len(read_coordinates(tmp_path / "picks" / "m.star")) <= 14
    _cli(
        "convert",
        str(tmp_path / "picks" / "m.star"),
        str(tmp_path / "m.box"),
        "--denoised",
        str(tmp_path / "m.npz"),
        "--diameter",
        "80",
    )
    assert "\t40\t40" in (tmp_path / "m.box").read_text()
    scored = _cli(
        "score",
        str(tmp_path / "picks"),
        str(tmp_path / "labels"),
        "--micrographs",
        str(tmp_path / "*.mrc"),
        "--diameter",
        "40",
    )
    assert "f1" in scored.stdout
    again = _cli("denoise", str(tmp_path / "m.mrc"), str(tmp_path / "m.npz"), check=False)
    assert again.returncode == 1 and "--overwrite" in again.stderr
    bad = _cli("denoise", str(tmp_path / "nothing.mrc"), str(tmp_path / "x.npz"), check=False)
    assert bad.returncode == 1 and "nothing.mrc: micrograph file does not exist" in bad.stderr
