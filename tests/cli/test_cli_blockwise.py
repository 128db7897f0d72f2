"""``seglab predict`` block by block: Zarr in and out, ``--workers``, ``--block``, errors."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic
import tifffile
import zarr

from napari_seglab.cli import main
from napari_seglab.core.inference import predict
from napari_seglab.core.modelio import load_model


def run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_line_error(code, err):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("seglab: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained by ``seglab train`` and a larger generated image of the same kind."""
    folder = tmp_path_factory.mktemp("blockwise")
    image, _gt, scribbles = synthetic.blobs((64, 72), n=6, seed=0, painted=0.05)
    tifffile.imwrite(folder / "img.tif", image)
    tifffile.imwrite(folder / "scr.tif", scribbles)
    model = folder / "m.seglab"
    argv = ["train", folder / "img.tif", folder / "scr.tif", "-o", model, "--steps", "3"]
    assert main([str(a) for a in [*argv, "--threads", "1", "--width", "4", "-q"]]) == 0
    big, _gt, _ = synthetic.blobs((300, 260), n=40, seed=3)
    zarr.create_array(str(folder / "big.zarr"), data=big, chunks=(128, 128))
    tifffile.imwrite(folder / "big.tif", big, tile=(64, 64))
    expected = predict(load_model(model), big)
    return folder, model, expected


@pytest.mark.slow
def test_zarr_to_zarr_on_a_local_cluster_of_two_workers(trained, capsys):
    folder, model, expected = trained
    out = folder / "pred.zarr"
    code, err = run(["predict", model, folder / "big.zarr", "-o", out, "--workers", "2"], capsys)
    assert code == 0, err
    assert "2 worker(s)" in err and " pixels in " in err
    labels = zarr.open(str(out))[:]
    assert labels.dtype == np.uint8 and np.array_equal(labels, expected.labels)


def test_zarr_to_tiff_with_probabilities_on_threads(trained, capsys):
    folder, model, expected = trained
    out = folder / "from_zarr.tif"
    code, err = run(["predict", model, folder / "big.zarr", "-o", out, "--probabilities"], capsys)
    assert code == 0, err
    assert "(300, 260) uint16, 78.0k pixels in " in err  # it read "0.1 Mpixel"
    assert np.array_equal(tifffile.imread(out), expected.labels)
    probs = tifffile.imread(folder / "from_zarr_probabilities.tif")
    np.testing.assert_allclose(probs, expected.probabilities, atol=1e-6)


def test_tiff_to_zarr_in_small_blocks(trained, capsys):
    folder, model, expected = trained
    out = folder / "from_tiff.zarr"
    argv = ["predict", model, folder / "big.tif", "-o", out, "--block", "64", "--probabilities"]
    code, err = run([*argv, "--threads", "2"], capsys)
    assert code == 0, err
    assert "tiff (300, 260) uint16" in err and "in 16 block(s) of 64x64" in err
    assert np.array_equal(zarr.open(str(out))[:], expected.labels)
    probs = zarr.open(str(folder / "from_tiff_probabilities.zarr"))
    assert probs.shape == (2, 300, 260) and probs.dtype == np.float32


def test_several_images_to_a_folder(trained, capsys):
    folder, model, expected = trained
    out = folder / "several"
    argv = ["predict", model, folder / "big.zarr", folder / "img.tif", "-o", out, "--block", "128"]
    code, err = run(argv, capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["big.zarr", "img.tif"]
    assert np.array_equal(zarr.open(str(out / "big.zarr"))[:], expected.labels)


def test_a_folder_stands_for_its_image_files_and_zarr_stores(trained, capsys, tmp_path):
    folder, model, expected = trained
    src = tmp_path / "in"
    src.mkdir()
    zarr.create_array(str(src / "big.zarr"), data=zarr.open(str(folder / "big.zarr"))[:])
    (src / "img.tif").write_bytes((folder / "img.tif").read_bytes())
    out = tmp_path / "out"
    code, err = run(["predict", model, src, "-o", out, "--block", "128", "-q"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["big.zarr", "img.tif"]
    assert np.array_equal(zarr.open(str(out / "big.zarr"))[:], expected.labels)
    # a second run: TIFFs seglab wrote are replaced, a Zarr store is not, and it says so
    line = one_line_error(*run(["predict", model, src, "-o", out, "--overwrite"], capsys))
    assert "big.zarr exists" in line and "even with --overwrite" in line
    # c.tif and c.zarr write c.tif and c.zarr: no clash
    (src / "big.tif").write_bytes((folder / "img.tif").read_bytes())
    code, err = run(["predict", model, src, "-o", tmp_path / "o3", "-q"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o3").iterdir()) == ["big.tif", "big.zarr", "img.tif"]
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(*run(["predict", model, empty, "-o", tmp_path / "o2"], capsys))
    assert "holds no image (.tif, .png, .jpg, ..., or a Zarr store)" in line


def test_block_wise_errors_are_one_line_and_write_nothing(trained, capsys):
    folder, model, _ = trained
    line = one_line_error(
        *run(["predict", model, folder / "big.zarr", "-o", folder / "big.zarr"], capsys)
    )
    assert "is the image" in line and "never writes over its inputs" in line
    argv = ["predict", model, folder / "big.zarr", "-o", folder / "x.zarr"]
    line = one_line_error(*run([*argv, "--workers", "2", "--scheduler", "tcp://h:1"], capsys))
    assert "not both" in line
    line = one_line_error(
        *run(["predict", model, folder / "none.zarr", "-o", folder / "y.zarr"], capsys)
    )
    assert "does not exist" in line
    rgb = folder / "rgb.zarr"
    zarr.save_array(str(rgb), np.zeros((40, 50, 3), np.uint8))
    line = one_line_error(*run(["predict", model, rgb, "-o", folder / "z.zarr"], capsys))
    assert "channel" in line
    # NaN pixels are refused block by block as the whole image is in memory: nothing written
    nan = np.ones((300, 200), np.float32)
    nan[250:260, 150:160] = np.nan
    zarr.create_array(str(folder / "nan.zarr"), data=nan, chunks=(100, 100))
    argv = ["predict", model, folder / "nan.zarr", "-o", folder / "n.zarr", "--block", "64", "-q"]
    line = one_line_error(*run(argv, capsys))
    assert "NaN or infinite" in line
    line = one_line_error(
        *run(["predict", model, rgb, "-o", folder / "z.zarr", "--scheduler", " "], capsys)
    )
    assert "scheduler's address" in line
    assert not any(p.name.startswith((".x.", ".y.", ".z.", ".n.")) for p in folder.iterdir())
    assert not (folder / "z.zarr").exists() and not (folder / "n.zarr").exists()


def test_relative_paths_reach_workers_in_other_folders(trained, capsys, monkeypatch, tmp_path):
    """A cluster's workers have their own working folders: inputs and outputs are resolved."""
    import os

    folder, model, expected = trained
    monkeypatch.chdir(folder)
    from napari_seglab.cli import blockwise_command

    real_compute = blockwise_command._compute

    def compute_elsewhere(*a, **kw):  # as a worker started in another folder would
        os.chdir(tmp_path)
        return real_compute(*a, **kw)

    monkeypatch.setattr(blockwise_command, "_compute", compute_elsewhere)
    code, err = run(["predict", model.name, "big.tif", "-o", "rel.zarr", "--block", "128"], capsys)
    assert code == 0, err
    assert np.array_equal(zarr.open(str(folder / "rel.zarr"))[:], expected.labels)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_workers_leave_ctrl_c_to_seglab_and_keep_glibc_s_mmap_threshold():
    """The local cluster's workers ignore SIGINT (seglab cancels the blocks and removes what
    they wrote), and start without MALLOC_TRIM_THRESHOLD_ (torch ran 2x slower with it)."""
    import os
    import signal

    from distributed import Client

    from napari_seglab.cli.blockwise_command import SLOW_WORKER_ENV, local_cluster

    def state():
        return signal.getsignal(signal.SIGINT) == signal.SIG_IGN, os.environ.get(SLOW_WORKER_ENV)

    with local_cluster(1) as cluster, Client(cluster) as client:
        assert list(client.run(state).values()) == [(True, None)]
