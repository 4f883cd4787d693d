import pytest

from cryopick.datasets import list_label_files, list_micrographs
from cryopick.io import InputError


def test_glob_listing_is_sorted_and_filters_formats(tmp_path):
    for name in ["b.mrc", "a.tif", "c.txt", "d.png"]:
        (tmp_path / name).write_bytes(b"")
    listing = list_micrographs(str(tmp_path / "*"))
    assert list(listing) == ["a", "b", "d"]


def test_list_file_with_relative_and_absolute_paths(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "m1.mrc").write_bytes(b"")
    (tmp_path / "elsewhere.mrc").write_bytes(b"")
    listing_file = tmp_path / "list.txt"
    listing_file.write_text(f"# micrographs\nraw/m1.mrc\n\n{tmp_path / 'elsewhere.mrc'}\n")
    listing = list_micrographs(str(listing_file), "set")
    assert listing == {
        "m1": str(tmp_path / "raw" / "m1.mrc"),
        "elsewhere": str(tmp_path / "elsewhere.mrc"),
    }


def test_duplicate_names_and_empty_sets_are_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "m.mrc").write_bytes(b"")
    (tmp_path / "b" / "m.tif").write_bytes(b"")
    with pytest.raises(InputError, match="share the name 'm'"):
        list_micrographs(str(tmp_path / "*" / "m.*"), "set")
    with pytest.raises(InputError, match="dataset 'x': no micrographs match"):
        list_micrographs(str(tmp_path / "*.jpg"), "x")
    with pytest.raises(InputError, match="list file .* does not exist"):
        list_micrographs(str(tmp_path / "missing.txt"))


def test_label_listing(tmp_path):
    (tmp_path / "m1.csv").write_text("")
    (tmp_path / "m2.star").write_text("")
    (tmp_path / "notes.md").write_text("")
    assert set(list_label_files(str(tmp_path))) == {"m1", "m2"}
    assert list_label_files(None) == {}
    with pytest.raises(InputError, match="does not exist"):
        list_label_files(str(tmp_path / "nope"))
