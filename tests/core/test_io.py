"""Files in and out: images read whole or refused with the reason, writes whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_seglab.core.io import check_file, read_image, write_atomic


def test_missing_files_folders_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"scribbles file .*none.tif does not exist"):
        read_image(tmp_path / "none.tif", "scribbles")
    with pytest.raises(IsADirectoryError, match="is a folder; give a file"):
        check_file(tmp_path)
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match=r"could not read image .*bad.tif"):
        read_image(tmp_path / "bad.tif")


def test_a_tiff_of_planes_saved_one_by_one_is_refused_and_a_thumbnail_is_named(tmp_path):
    image = np.arange(64 * 72, dtype=np.uint16).reshape(64, 72)
    for plane in range(3):
        tifffile.imwrite(tmp_path / "planes.tif", image, append=plane > 0)
    with pytest.raises(ValueError, match="holds 3 separate images"):
        read_image(tmp_path / "planes.tif")
    tifffile.imwrite(tmp_path / "thumb.tif", image)
    tifffile.imwrite(tmp_path / "thumb.tif", image[::8, ::8], append=True)
    with pytest.warns(UserWarning, match=r"reading its first image \(64, 72\).*\(8, 9\)"):
        got = read_image(tmp_path / "thumb.tif")
    np.testing.assert_array_equal(got, image)


def test_an_interrupted_write_leaves_nothing_even_right_after_creating_the_file(
    tmp_path, monkeypatch
):
    target = tmp_path / "out.tif"
    target.write_bytes(b"old")
    real_close = os.close

    def close_then_terminated(fd):  # the signal arrives just after the file was created
        real_close(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "close", close_then_terminated)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, lambda tmp: Path(tmp).write_bytes(b"new"))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["out.tif"] and target.read_bytes() == b"old"
    write_atomic(target, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert sorted(os.listdir(tmp_path)) == ["out.tif"] and target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_palette_scribbles_are_their_indices_and_an_opaque_alpha_is_dropped(tmp_path):
    """Label exports are often palette PNGs (0/1/2 with colours): read as colours they were
    refused ("scribbles hold label 255"). A fully opaque alpha channel is no channel."""
    from PIL import Image

    strokes = np.zeros((20, 30), np.uint8)
    strokes[2:5, 3:20] = 1
    strokes[10:12, 5:25] = 2
    palette = Image.frombytes("P", (30, 20), strokes.tobytes())
    palette.putpalette([0, 0, 0, 0, 0, 255, 255, 128, 0])
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png", "scribbles"), strokes)
    assert read_image(tmp_path / "p.png").shape == (20, 30, 3)  # an image: its colours
    grey_alpha = np.stack([strokes, np.full_like(strokes, 255)], axis=-1)
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png", "scribbles"), strokes)
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(np.dstack([rgb, np.full((20, 30), 255, np.uint8)]), "RGBA").save(
        tmp_path / "rgba.png"
    )
    with pytest.warns(UserWarning, match="alpha channel is opaque everywhere"):
        np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)
    alpha = np.full((20, 30), 255, np.uint8)
    alpha[0, 0] = 10  # a real alpha channel stays
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "alpha.png")
    assert read_image(tmp_path / "alpha.png").shape == (20, 30, 4)


def test_a_numpy_file_is_read_and_a_pickled_one_refused(tmp_path):
    array = np.arange(12, dtype=np.uint16).reshape(3, 4)
    np.save(tmp_path / "a.npy", array)
    np.testing.assert_array_equal(read_image(tmp_path / "a.npy"), array)
    np.save(tmp_path / "o.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"could not read image .*o\.npy"):
        read_image(tmp_path / "o.npy")
