"""Saved strokes (core.autosave): round trips, only the touched chunks written, fingerprints,
bad input, and a writer killed while it writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from napari_seglab.core.autosave import (
    CHUNK,
    StrokeStore,
    autosave_root,
    image_key,
)

CLASSES = [("background", "#0072b2"), ("foreground", "#e69f00"), ("debris", "#009e73")]


@pytest.mark.parametrize("shape", [(64, 80), (3, 300, 520), (1, 5, 7)])
def test_strokes_and_classes_come_back(tmp_path, shape):
    rng = np.random.default_rng(0)
    strokes = (rng.random(shape) < 0.05) * rng.integers(1, 4, shape)
    store = StrokeStore.create(tmp_path, "k1", shape, image_name="cells", source="/data/c.tif")
    store.save(strokes, CLASSES)
    found = StrokeStore.find(tmp_path, "k1")
    assert found is not None
    np.testing.assert_array_equal(found.read(), strokes)
    info = found.info()
    assert info.classes == CLASSES
    assert info.painted == np.count_nonzero(strokes)
    assert (info.image_name, info.source, info.shape) == ("cells", "/data/c.tif", shape)
    assert abs(info.saved_at - time.time()) < 600


def test_a_stroke_rewrites_only_the_chunks_it_touches(tmp_path):
    shape = (2 * CHUNK + 10, 2 * CHUNK)
    store = StrokeStore.create(tmp_path, "k", shape)
    layer = np.zeros(shape, np.uint8)
    layer[5:9, 5:40] = 2
    store.save(layer, CLASSES[:2], region=(slice(5, 9), slice(5, 40)))
    # pixels changed outside the region (not yet saved) stay as they were in the store
    layer[CHUNK + 20, CHUNK + 20] = 1
    layer[6, 6] = 1
    store.save(layer, region=(slice(6, 7), slice(6, 7)))
    saved = StrokeStore.find(tmp_path, "k").read()
    assert saved[6, 6] == 1 and saved[5, 5] == 2
    assert saved[CHUNK + 20, CHUNK + 20] == 0
    chunk_files = [p for p in (tmp_path / "k" / "scribbles.zarr").rglob("*") if p.is_file()]
    assert len([p for p in chunk_files if p.name != "zarr.json"]) == 1  # one chunk written
    assert StrokeStore.find(tmp_path, "k").info().classes == CLASSES[:2]  # kept


def test_the_painted_count_follows_region_saves_and_strokes_on_top_keep_the_saved(tmp_path):
    shape = (300, 300)
    store = StrokeStore.create(tmp_path, "k", shape)
    old = np.zeros(shape, np.uint8)
    old[10:20, 10:290] = 2  # across two chunks
    store.save(old)
    layer = np.zeros(shape, np.uint8)  # a new, empty layer: the saved strokes are not in it
    layer[12, 5:30] = 1
    store.save(layer, region=(slice(12, 13), slice(5, 30)), keep_saved=True)
    expected = np.where(layer != 0, layer, old)
    np.testing.assert_array_equal(store.read(), expected)
    assert store.info().painted == np.count_nonzero(expected)
    # without keep_saved the region follows the layer, erasing included
    layer[12, 5:30] = 0
    store.save(layer, region=(slice(12, 13), slice(5, 30)))
    saved = store.read()
    assert not saved[:256, :256].any()  # the chunk holds the layer's pixels: none
    assert saved[10:20, 256:290].all()  # the other chunk kept the old strokes
    assert store.info().painted == np.count_nonzero(saved)


def test_the_fingerprint_follows_the_content_not_the_array():
    rng = np.random.default_rng(1)
    image = rng.random((300, 400)).astype(np.float32)
    assert image_key(image) == image_key(image.copy())
    assert image_key(image) == image_key(np.asfortranarray(image))
    other = image.copy()
    other[::8, ::8] += 1  # pixels of the sample grid
    assert image_key(other) != image_key(image)
    assert image_key(image.astype(np.float64)) != image_key(image)
    assert image_key(image[:, :399]) != image_key(image)
    assert len(image_key(image)) == 32


def test_a_lazy_image_is_fingerprinted_from_a_few_planes():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(2)
    stack = rng.random((6, 700, 600)).astype(np.float32)
    lazy = da.from_array(stack, chunks=(1, 256, 256))
    assert image_key(lazy) == image_key(da.from_array(stack.copy(), chunks=(2, 100, 100)))
    changed = stack.copy()
    changed[3, 10, 10] += 1  # the middle plane's corner
    assert image_key(da.from_array(changed, chunks=(1, 256, 256))) != image_key(lazy)
    # a multiscale list: the smallest level is read, the full level names the shape
    pyramid = [lazy, lazy[:, ::2, ::2]]
    assert image_key(pyramid) != image_key(lazy[:, ::2, ::2])


@pytest.mark.parametrize(
    ("shape", "key", "message"),
    [
        ((64,), "k", "shape must be"),
        ((2, 3, 4, 5), "k", "shape must be"),
        ((0, 5), "k", "shape must be"),
        ((8, 8), "../evil", "not a session key"),
        ((8, 8), "", "not a session key"),
        ((8, 8), ".hidden", "not a session key"),
    ],
)
def test_bad_stores_are_refused(tmp_path, shape, key, message):
    with pytest.raises(ValueError, match=message):
        StrokeStore.create(tmp_path, key, shape)


def test_bad_strokes_are_refused_and_nothing_is_written(tmp_path):
    store = StrokeStore.create(tmp_path, "k", (16, 16))
    with pytest.raises(ValueError, match=r"shape \(16, 17\) does not match .* \(16, 16\)"):
        store.save(np.zeros((16, 16 + 1), np.uint8))
    bad = np.zeros((16, 16), np.int32)
    bad[3, 3] = 300
    with pytest.raises(ValueError, match="300"):
        store.save(bad)
    assert not store.read().any()


def test_unreadable_or_missing_sessions_are_not_found(tmp_path):
    assert StrokeStore.find(tmp_path, "nothing") is None
    StrokeStore.create(tmp_path, "k", (8, 8)).save(np.ones((8, 8), np.uint8))
    (tmp_path / "k" / "session.json").write_text("{not json")
    assert StrokeStore.find(tmp_path, "k") is None


def test_discard_and_create_replace_what_was_saved(tmp_path):
    store = StrokeStore.create(tmp_path, "k", (8, 8))
    store.save(np.ones((8, 8), np.uint8), CLASSES[:2])
    again = StrokeStore.create(tmp_path, "k", (8, 8))
    assert not again.read().any()
    again.discard()
    assert StrokeStore.find(tmp_path, "k") is None
    assert not any(tmp_path.iterdir())  # nothing hidden left behind


def test_the_root_is_the_user_data_folder(monkeypatch, tmp_path):
    if sys.platform != "linux":
        pytest.skip("XDG_DATA_HOME is the Linux convention")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert autosave_root() == tmp_path / "napari-seglab" / "autosave"


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from napari_seglab.core.autosave import StrokeStore
    root = sys.argv[1]
    store = StrokeStore.create(root, "k", (600, 600))
    layer = np.zeros((600, 600), np.uint8)
    n = 0
    while True:
        n += 1
        y = (n * 37) % 590
        layer[y : y + 8, :] = 1 + n % 2   # every chunk along the row, each stroke a new value
        store.save(layer, [("background", "#0072b2"), ("foreground", "#e69f00")],
                   region=(slice(y, y + 8), slice(0, 600)))
        if n == 5:
            print("writing", flush=True)
    """
)


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.45])
def test_a_writer_killed_mid_write_leaves_a_readable_session(tmp_path, delay):
    """SIGKILL at some moment of a stream of saves: the session reads back whole (each chunk
    old or new, never torn), with its description."""
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("no SIGKILL here")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(delay)
    finally:
        proc.kill()
        proc.wait(30)
    store = StrokeStore.find(tmp_path, "k")
    assert store is not None
    saved = store.read()
    assert set(np.unique(saved)) <= {0, 1, 2}
    assert np.any(saved)
    # every chunk is one save's or another's: within a chunk a painted row (a stroke spans
    # the row) holds one value; a save cut short may leave a row's chunks from two saves
    for x0 in range(0, 600, CHUNK):
        for row in saved[:, x0 : x0 + CHUNK]:
            assert len(np.unique(row)) == 1
    payload = json.loads((tmp_path / "k" / "session.json").read_text())
    assert payload["classes"][1] == ["foreground", "#e69f00"]
