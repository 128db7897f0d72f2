"""Lazy reading (Zarr, OME-Zarr, TIFF) and block-wise Zarr writing."""

from __future__ import annotations

import pickle

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from skimage import io

from napari_seglab.core.io import ImageFileError
from napari_seglab.core.lazyio import is_zarr, open_lazy, write_zarr


def pattern(shape, dtype=np.uint16):
    return (np.arange(int(np.prod(shape))) % 997).reshape(shape).astype(dtype)


def ome_zarr(path, data, axes):
    """A minimal OME-Zarr 0.4 image: one level at path "0" with the given axes."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", data=data, chunks=data.shape)
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": a, "type": "channel" if a == "c" else "space"} for a in axes],
            "datasets": [{"path": "0"}],
        }
    ]
    return path


def test_zarr_array_and_group_of_one(tmp_path):
    data = pattern((50, 60))
    zarr.save_array(str(tmp_path / "a.zarr"), data)
    image = open_lazy(tmp_path / "a.zarr")
    assert image.source == "zarr" and image.channel_axis is None
    assert isinstance(image.data, da.Array) and np.array_equal(image.data.compute(), data)
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("raw", data=data)
    assert np.array_equal(open_lazy(tmp_path / "g.zarr").data.compute(), data)
    group.create_array("other", data=data)
    with pytest.raises(ImageFileError, match="2 arrays"):
        open_lazy(tmp_path / "g.zarr")


def test_ome_zarr_axes_give_the_channel_axis(tmp_path):
    data = pattern((3, 40, 50))
    image = open_lazy(ome_zarr(tmp_path / "c.zarr", data, "cyx"))
    assert image.source == "ome-zarr" and image.channel_axis == 0
    assert np.array_equal(image.data.compute(), data)
    # one time point and one channel: both go, a 2D image remains
    image = open_lazy(ome_zarr(tmp_path / "t.zarr", data[None, :1], "tcyx"))
    assert image.channel_axis is None and image.data.shape == (40, 50)
    with pytest.raises(ImageFileError, match="time series"):
        open_lazy(ome_zarr(tmp_path / "ts.zarr", np.stack([data, data]), "tcyx"))
    # z names planes, never channels; after a channel of one goes, the positions follow
    assert open_lazy(ome_zarr(tmp_path / "z.zarr", data, "zyx")).plane_axes == {0: "Z"}
    image = open_lazy(ome_zarr(tmp_path / "cz.zarr", data[None, :1], "czyx"))
    assert image.plane_axes == {0: "Z"} and image.channel_axis is None


def test_ome_zarr_metadata_that_leads_nowhere_is_said(tmp_path):
    data = pattern((3, 40, 50))
    path = ome_zarr(tmp_path / "m.zarr", data, "cyx")
    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs)
    attrs["multiscales"][0]["datasets"] = [{"path": "nothere"}]
    group.attrs.update(attrs)
    with pytest.raises(ImageFileError, match="does not lead to an array"):
        open_lazy(path)
    with pytest.raises(ImageFileError, match="name 2 axes"):
        open_lazy(ome_zarr(tmp_path / "a.zarr", data, "yx"))


def test_relative_paths_are_resolved_for_workers_elsewhere(tmp_path, monkeypatch):
    data = pattern((30, 40))
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    zarr.save_array("in.zarr", data)
    tifffile.imwrite("in.tif", data)
    lazy = [open_lazy("in.zarr").data, open_lazy("in.tif").data]
    monkeypatch.chdir(tmp_path)  # a worker started in another folder
    assert all(np.array_equal(a.compute(), data) for a in lazy)
    monkeypatch.chdir(tmp_path / "here")

    def elsewhere(delayed):
        monkeypatch.chdir(tmp_path)
        delayed.compute()

    write_zarr({"out.zarr": lazy[0]}, run=elsewhere)
    assert np.array_equal(zarr.open(str(tmp_path / "here" / "out.zarr"))[:], data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]


def test_tiff_is_read_by_region_and_travels_as_a_path(tmp_path):
    data = pattern((300, 520, 3), np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", data, tile=(64, 64))
    image = open_lazy(tmp_path / "t.tif")
    assert image.source == "tiff" and image.data.shape == data.shape
    assert image.data.chunks[-1] == (3,)  # colours whole
    region = image.data[100:150, 200:260]
    assert np.array_equal(region.compute(), data[100:150, 200:260])
    copy = pickle.loads(pickle.dumps(image.data))  # what a cluster's workers receive
    assert np.array_equal(copy.compute(), data)


def test_other_formats_are_read_whole_and_missing_files_said(tmp_path):
    data = pattern((20, 30), np.uint8)
    io.imsave(tmp_path / "p.png", data, check_contrast=False)
    image = open_lazy(tmp_path / "p.png")
    assert image.source == "in memory" and np.array_equal(image.data.compute(), data)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_lazy(tmp_path / "nothing.zarr")
    assert is_zarr(tmp_path / "nothing.zarr") and not is_zarr(tmp_path / "p.png")


def test_write_zarr_whole_or_not_at_all(tmp_path):
    labels = da.from_array(pattern((70, 90), np.uint8), chunks=32)
    probs = da.stack([labels, labels]).astype(np.float32) / 255
    written = write_zarr({tmp_path / "l.zarr": labels, tmp_path / "p.zarr": probs})
    assert written == [tmp_path / "l.zarr", tmp_path / "p.zarr"]
    assert np.array_equal(zarr.open(str(tmp_path / "l.zarr"))[:], labels.compute())
    assert zarr.open(str(tmp_path / "p.zarr")).dtype == np.float32
    with pytest.raises(FileExistsError):
        write_zarr({tmp_path / "l.zarr": labels})

    def interrupted(delayed):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_zarr({tmp_path / "new.zarr": labels}, run=interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.zarr", "p.zarr"]


def test_uneven_blocks_are_written_to_whole_zarr_chunks(tmp_path):
    # the prediction's blocks: all of one size but the last, which may be larger
    labels = da.from_array(pattern((100, 90), np.uint8), chunks=((32, 32, 36), (40, 50)))
    write_zarr({tmp_path / "u.zarr": labels}, run=lambda d: d.compute(scheduler="threads"))
    assert np.array_equal(zarr.open(str(tmp_path / "u.zarr"))[:], labels.compute())
    ragged = da.from_array(pattern((100, 90), np.uint8), chunks=((30, 40, 30), (90,)))
    write_zarr({tmp_path / "r.zarr": ragged}, run=lambda d: d.compute(scheduler="threads"))
    assert np.array_equal(zarr.open(str(tmp_path / "r.zarr"))[:], ragged.compute())
