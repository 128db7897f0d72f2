"""A folder of images predicted (core.batch): which files, where the labels go, what is
refused before anything is written, and what is never replaced."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic
import tifffile

from napari_seglab.core.batch import image_files, label_targets, predict_files
from napari_seglab.core.inference import predict
from napari_seglab.core.model import ModelConfig
from napari_seglab.core.training import TrainConfig, train


@pytest.fixture(scope="module")
def model():
    image, _gt, scribbles = synthetic.blobs((48, 48), n=4, seed=0, painted=0.08)
    config = TrainConfig(steps=3, num_threads=1, preview_every=0, model=ModelConfig(width=4))
    return list(train(image, scribbles, config))[-1].model


def test_the_images_of_a_folder(tmp_path):
    for name in ("b.tif", "a.png", "a_scribbles.tif", "a_probabilities.tif", ".hidden.tif"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.tif").mkdir()
    assert [p.name for p in image_files(tmp_path)] == ["a.png", "b.tif"]
    with pytest.raises(NotADirectoryError):
        image_files(tmp_path / "b.tif")
    # Zarr stores: a *.zarr folder, or a folder with Zarr metadata, listed only when asked
    (tmp_path / "c.zarr").mkdir()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "zarr.json").write_text("{}")
    (tmp_path / "a_probabilities.zarr").mkdir()
    (tmp_path / "plain").mkdir()
    assert [p.name for p in image_files(tmp_path)] == ["a.png", "b.tif"]
    names = [p.name for p in image_files(tmp_path, zarr=True)]
    assert names == ["a.png", "b.tif", "c.zarr", "d"]
    assert [p.name for p in image_files(tmp_path, zarr=True) if p.is_dir()] == ["c.zarr", "d"]
    with pytest.raises(NotADirectoryError):
        image_files(tmp_path / "b.tif", zarr=True)


def test_labels_never_land_among_the_images_nor_on_each_other(tmp_path):
    out = tmp_path / "out"
    assert label_targets([tmp_path / "a.png"], out) == [out / "a.tif"]
    with pytest.raises(ValueError, match="holds the images"):
        label_targets([tmp_path / "a.png"], tmp_path)
    with pytest.raises(
        ValueError, match=r"c.png and c.tif would write one labels file, .*out.c\.tif"
    ):
        label_targets([tmp_path / "c.png", tmp_path / "c.tif"], out)


def test_each_image_is_predicted_the_bad_ones_named_nothing_replaced(tmp_path, model):
    src = tmp_path / "images"
    src.mkdir()
    images = [synthetic.blobs((48, 40), n=3, seed=s)[0] for s in (1, 2)]
    for i, image in enumerate(images):
        tifffile.imwrite(src / f"im{i}.tif", image)
    (src / "broken.tif").write_bytes(b"not a tiff")
    out = tmp_path / "out"
    done = list(predict_files(model, image_files(src), out))
    assert [(d.index, d.total, d.source.name) for d in done] == [
        (0, 3, "broken.tif"),
        (1, 3, "im0.tif"),
        (2, 3, "im1.tif"),
    ]
    assert done[0].error and done[1].error is None and not (out / "broken.tif").exists()
    for i, image in enumerate(images):
        np.testing.assert_array_equal(
            tifffile.imread(out / f"im{i}.tif"), predict(model, image).labels
        )
    again = list(predict_files(model, [src / "im0.tif"], out))
    assert "exists and is not replaced" in again[0].error
    # stop: nothing after
    assert list(predict_files(model, image_files(src), tmp_path / "o2", stop=lambda: True)) == []


def test_a_constant_image_is_predicted_with_a_note(tmp_path, model):
    """A blank image's prediction means nothing: the prediction says so (in memory and for
    a folder), and a real image has no note."""
    blank = np.full((40, 48), 7, np.uint16)
    prediction = predict(model, blank)
    assert len(prediction.notes) == 1 and "constant (every pixel 7)" in prediction.notes[0]
    assert predict(model, blank, region=(slice(0, 8), slice(0, 8))).notes == ()
    assert "its prediction means nothing" in prediction.notes[0]
    assert predict(model, synthetic.blobs((48, 40), n=3, seed=1)[0]).notes == ()
    src = tmp_path / "images"
    src.mkdir()
    tifffile.imwrite(src / "blank.tif", blank)
    tifffile.imwrite(src / "real.tif", synthetic.blobs((48, 40), n=3, seed=1)[0])
    done = list(predict_files(model, image_files(src), tmp_path / "out"))
    assert [(d.source.name, len(d.notes), d.error) for d in done] == [
        ("blank.tif", 1, None),
        ("real.tif", 0, None),
    ]
    assert (tmp_path / "out" / "blank.tif").exists()


def test_a_folder_reads_a_tiffs_axes(tmp_path):
    """Apply to folder read a ZYX file of 3 planes as the 3 channels of a colour model; it
    is refused, and a CYX file is read as its channels."""
    image, _, scribbles = synthetic.blobs((48, 40), n=3, seed=1)
    rgb = np.stack([image, image[::-1], image[:, ::-1]], axis=-1)
    config = TrainConfig(steps=2, num_threads=1, preview_every=0, model=ModelConfig(width=4))
    model = list(train(rgb, scribbles, config))[-1].model
    src = tmp_path / "images"
    src.mkdir()
    cyx = np.moveaxis(rgb, -1, 0)
    tifffile.imwrite(src / "zyx.tif", cyx, photometric="minisblack", metadata={"axes": "ZYX"})
    tifffile.imwrite(src / "cyx.tif", cyx, imagej=True, metadata={"axes": "CYX"})
    done = list(predict_files(model, image_files(src), tmp_path / "out"))
    assert [d.source.name for d in done] == ["cyx.tif", "zyx.tif"]
    assert done[0].error is None
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "out" / "cyx.tif"), predict(model, rgb).labels
    )
    assert "axis 0 (size 3) holds planes, not the 3 channels" in done[1].error
    # a batch's user cannot pass an axis: the message says what they can do
    assert "save the file with that axis named C" in done[1].error
    assert "Python: channel_axis" not in done[1].error
