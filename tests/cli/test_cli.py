"""``seglab train`` / ``seglab predict``: 2D, RGB and 3D runs, and one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import synthetic
import tifffile
from skimage import io

from napari_seglab.cli import main
from napari_seglab.core import io as seg_io
from napari_seglab.core.config import DEFAULT_EDGE_FLUX
from napari_seglab.core.inference import predict
from napari_seglab.core.modelio import load_model


def blobs(shape=(64, 72), seed=0):
    """The shared disks image with 5% painted: ``(image, scribbles)``."""
    image, _gt, scribbles = synthetic.blobs(shape, n=6, seed=seed, painted=0.05)
    return image, scribbles


@pytest.fixture
def files(tmp_path):
    image, scribbles = blobs()
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "scr.tif", scribbles)
    return tmp_path


FAST_INIT = ["--steps", "3", "--threads", "1", "--device", "cpu", "-q"]  # with --init
FAST = [*FAST_INIT, "--width", "4"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def one_line_error(code, err):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("seglab: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_train_predict_2d(files, capsys):
    model = files / "m.safetensors"
    code, err = run(["train", files / "img.tif", files / "scr.tif", "-o", model, *FAST], capsys)
    assert code == 0, err
    assert model.is_file()
    out = files / "pred.tif"
    code, err = run(["predict", model, files / "img.tif", "-o", out, "--probabilities"], capsys)
    assert code == 0, err
    labels = tifffile.imread(out)
    assert labels.dtype == np.uint8 and labels.shape == (64, 72)
    assert set(np.unique(labels)) <= {1, 2}
    probs = tifffile.imread(files / "pred_probabilities.tif")
    assert probs.shape == (2, 64, 72) and probs.dtype == np.float32
    # several images -> a folder, named after the inputs; PNG input read via scikit-image
    io.imsave(files / "other.png", blobs(seed=1)[0], check_contrast=False)
    code, err = run(
        ["predict", model, files / "img.tif", files / "other.png", "-o", files / "out"], capsys
    )
    assert code == 0, err
    assert sorted(os.listdir(files / "out")) == ["img.tif", "other.tif"]
    assert tifffile.imread(files / "out" / "other.tif").shape == (64, 72)
    # warm start
    model2 = files / "m2.safetensors"
    code, err = run(
        ["train", files / "img.tif", files / "scr.tif", "-o", model2, "--init", model, *FAST_INIT],
        capsys,
    )
    assert code == 0, err
    assert model2.is_file()
    # the edge-aware regulariser is on unless --lambda-edge 0 (its old name --edge-weight
    # still works, with a note)
    assert load_model(model).train_settings["lambda_edge_used"] == 2.0
    model3 = files / "m3.safetensors"
    argv = ["train", files / "img.tif", files / "scr.tif", "-o", model3, "--edge-weight", "0"]
    code, err = run([*argv, *FAST], capsys)
    assert code == 0, err
    assert "note: --edge-weight is now --lambda-edge" in err
    assert load_model(model3).train_settings["lambda_edge_used"] == 0.0
    # the flux term is on by default, and --edge-flux sets its weight
    assert load_model(model).train_settings["edge_flux"] == DEFAULT_EDGE_FLUX > 0
    argv = ["train", files / "img.tif", files / "scr.tif", "-o", model3, "--edge-flux", "0"]
    code, err = run([*argv, *FAST], capsys)
    assert code == 0, err
    assert load_model(model3).train_settings["edge_flux"] == 0.0
    argv = ["train", files / "img.tif", files / "scr.tif", "-o", model3, "--loss", "tversky"]
    line = one_line_error(*run(argv, capsys))
    assert "no longer offered" in line and "loss='dice'" in line


def test_train_says_how_well_the_strokes_are_reproduced(files, capsys):
    model = files / "said.seglab"
    argv = [
        "train",
        files / "img.tif",
        files / "scr.tif",
        "-o",
        model,
        *FAST_INIT[:-1],
        "--width",
        "4",
    ]
    code, err = run(argv, capsys)
    assert code == 0, err
    assert re.search(
        r"painted pixels reproduced \(training crops\): background \d+%, foreground \d+%", err
    ), err


def test_train_warns_about_a_class_with_no_strokes(files, tmp_path, capsys):
    s = tifffile.imread(files / "scr.tif")
    s[s == 2] = 3  # classes 1 and 3 painted, no 2
    tifffile.imwrite(tmp_path / "gap.tif", s)
    argv = ["train", files / "img.tif", tmp_path / "gap.tif", "-o", tmp_path / "m.seglab"]
    code, err = run([*argv, *FAST], capsys)
    assert code == 0, err
    assert "warning: class 2 has no strokes but class 3 has" in err


def test_train_warns_about_a_lost_class_even_when_quiet(tmp_path, capsys):
    """A foreground stroke on pure noise cannot be learnt in 3 steps: the user is told, also
    with --quiet."""
    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "noise.tif", rng.normal(100, 10, (64, 64)).astype(np.float32))
    s = np.zeros((64, 64), np.uint8)
    s[:, :30] = 1
    s[30:32, 40:42] = 2
    tifffile.imwrite(tmp_path / "s.tif", s)
    argv = ["train", tmp_path / "noise.tif", tmp_path / "s.tif", "-o", tmp_path / "m.seglab"]
    code, err = run([*argv, *FAST], capsys)
    assert code == 0, err
    assert re.search(r"warning: only \d+% of the painted \w+ pixels are reproduced", err), err


def test_train_predict_rgb_and_3d(tmp_path, capsys):
    image, scribbles = blobs((40, 48))
    rgb = np.stack([image, 255 - image, image // 2], -1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb)
    tifffile.imwrite(tmp_path / "scr.tif", scribbles)
    m = tmp_path / "rgb.safetensors"
    code, err = run(["train", tmp_path / "rgb.tif", tmp_path / "scr.tif", "-o", m, *FAST], capsys)
    assert code == 0, err
    code, err = run(["predict", m, tmp_path / "rgb.tif", "-o", tmp_path / "p.tif"], capsys)
    assert code == 0, err
    assert tifffile.imread(tmp_path / "p.tif").shape == (40, 48)

    stack = np.stack([blobs((40, 48), seed=i)[0] for i in range(5)])
    s3 = np.zeros(stack.shape, np.uint8)
    s3[2] = blobs((40, 48), seed=2)[1]
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    tifffile.imwrite(tmp_path / "s3.tif", s3)
    m3 = tmp_path / "3d.safetensors"
    code, err = run(["train", tmp_path / "stack.tif", tmp_path / "s3.tif", "-o", m3, *FAST], capsys)
    assert code == 0, err
    code, err = run(["predict", m3, tmp_path / "stack.tif", "-o", tmp_path / "p3.tif"], capsys)
    assert code == 0, err
    assert tifffile.imread(tmp_path / "p3.tif").shape == (5, 40, 48)


def _write(path: Path, array):
    tifffile.imwrite(path, array)
    return path


def test_train_bad_inputs(files, capsys):
    image, scribbles = blobs()
    d = files
    nan_image = image.astype(np.float32)
    nan_image[0, 0] = np.nan
    cases = {
        "does not exist": ["train", d / "missing.tif", d / "scr.tif", "-o", d / "m.seglab"],
        "does not match": [
            "train",
            d / "img.tif",
            _write(d / "small.tif", scribbles[:-1]),
            "-o",
            d / "m.seglab",
        ],
        "no labels": [
            "train",
            d / "img.tif",
            _write(d / "empty.tif", 0 * scribbles),
            "-o",
            d / "m.seglab",
        ],
        "only class": [
            "train",
            d / "img.tif",
            _write(d / "one.tif", (scribbles > 0).astype(np.uint8)),
            "-o",
            d / "m.seglab",
        ],
        "NaN": ["train", _write(d / "nan.tif", nan_image), d / "scr.tif", "-o", d / "m.seglab"],
        "positive number": [
            "train",
            d / "img.tif",
            d / "scr.tif",
            "-o",
            d / "m.seglab",
            "--seconds",
            "-5",
        ],
        "positive integer": [
            "train",
            d / "img.tif",
            d / "scr.tif",
            "-o",
            d / "m.seglab",
            "--steps",
            "0",
        ],
        "invalid choice": [
            "train",
            d / "img.tif",
            d / "scr.tif",
            "-o",
            d / "m.seglab",
            "--device",
            "tpu",
        ],
        "not allowed with": [
            "train",
            d / "img.tif",
            d / "scr.tif",
            "-o",
            d / "m.seglab",
            "--steps",
            "3",
            "--seconds",
            "2",
        ],
        "unknown loss": None,
    }
    cases.pop("unknown loss")
    cases["choice: 'l2'"] = [
        "train",
        d / "img.tif",
        d / "scr.tif",
        "-o",
        d / "m.seglab",
        "--loss",
        "l2",
    ]
    cases["choice: 'magic'"] = [
        "train",
        d / "img.tif",
        d / "scr.tif",
        "-o",
        d / "m.seglab",
        "--class-weights",
        "magic",
    ]
    cases["number >= 0"] = [
        "train",
        d / "img.tif",
        d / "scr.tif",
        "-o",
        d / "m.seglab",
        "--lambda-edge",
        "-1",
    ]
    cases["required"] = ["train", d / "img.tif", d / "scr.tif"]
    cases["could not read"] = [
        "train",
        _write_text(d / "junk.tif"),
        d / "scr.tif",
        "-o",
        d / "m.seglab",
    ]
    for expected, argv in cases.items():
        code, err = run(argv, capsys)
        line = one_line_error(code, err)
        assert expected in line, (expected, line)
        assert not (d / "m.seglab").exists()
    assert not [p for p in os.listdir(d) if p.startswith(".")]


def _write_text(path: Path) -> Path:
    path.write_text("not an image")
    return path


def test_label_above_model_classes_and_unsafe_model(files, capsys):
    d = files
    model = d / "m.safetensors"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    _image, scribbles = blobs()
    s3 = scribbles.copy()
    s3[:3, :3] = 3
    _write(d / "s3.tif", s3)
    code, err = run(
        ["train", d / "img.tif", d / "s3.tif", "-o", d / "w.seglab", "--init", model, *FAST_INIT],
        capsys,
    )
    assert "label 3 but the model has 2 classes" in one_line_error(code, err)
    (d / "evil.pt").write_bytes(b"\x80\x04\x95" + b"x" * 40)
    for argv in (
        ["predict", d / "evil.pt", d / "img.tif", "-o", d / "p.tif"],
        ["train", d / "img.tif", d / "scr.tif", "-o", d / "w.seglab", "--init", d / "evil.pt"],
    ):
        code, err = run(argv, capsys)
        assert "pickle" in one_line_error(code, err)
    assert not (d / "p.tif").exists() and not (d / "w.seglab").exists()


def test_predict_bad_inputs(files, capsys):
    d = files
    model = d / "m.safetensors"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    rgb = np.zeros((10, 12, 3), np.uint8)
    nan = np.full((10, 12), np.nan, np.float32)
    d.joinpath("afile").write_text("x")
    cases = {
        "does not exist": ["predict", model, d / "missing.tif", "-o", d / "p.tif"],
        "model file": ["predict", d / "nomodel.st", d / "img.tif", "-o", d / "p.tif"],
        "channel": ["predict", model, _write(d / "rgb.tif", rgb), "-o", d / "p.tif"],
        "NaN": ["predict", model, _write(d / "nan.tif", nan), "-o", d / "p.tif"],
        "is a file": ["predict", model, d / "img.tif", d / "rgb.tif", "-o", d / "afile"],
        "is given twice": ["predict", model, d / "img.tif", d / "img.tif", "-o", d / "o"],
        "invalid choice": ["predict", model, d / "img.tif", "-o", d / "p.tif", "--device", "x"],
    }
    for expected, argv in cases.items():
        code, err = run(argv, capsys)
        line = one_line_error(code, err)
        assert expected in line, (expected, line)
        assert not (d / "p.tif").exists()
    assert not [p for p in os.listdir(d) if p.startswith(".")]


def test_console_script_error_has_no_traceback(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "napari_seglab",
        "predict",
        str(tmp_path / "none.st"),
        str(tmp_path / "none.tif"),
        "-o",
        str(tmp_path / "x.tif"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("seglab: error:")
    assert len(out.stderr.strip().splitlines()) == 1


def test_help_and_gui_parser_still_work(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "train" in capsys.readouterr().out
    from napari_seglab.cli import build_parser

    args = build_parser().parse_args([])
    assert args.func.__name__ == "_open_app"
    args = build_parser().parse_args(["gui", "x.tif"])
    assert args.func.__name__ == "_open_app" and args.image == "x.tif"


def test_train_help_names_the_defaults(capsys):
    from napari_seglab.core.training import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    config = TrainConfig()
    assert f"(default: {config.loss}" in text
    assert f"(default: {config.class_weighting})" in text
    assert f"default {config.forest_teacher:g}, 0 = off" in text
    from napari_seglab.cli import build_parser

    parsed = build_parser().parse_args(["train", "i.tif", "s.tif", "-o", "m.seglab"])
    assert parsed.forest_teacher == config.forest_teacher
    off = ["train", "i.tif", "s.tif", "-o", "m.seglab", "--forest-teacher", "0"]
    assert build_parser().parse_args(off).forest_teacher == 0.0
    assert f"(default {config.edge_flux:g}, 0 = off; two classes only; not when" in text
    assert parsed.edge_flux == config.edge_flux
    more = ["train", "i.tif", "s.tif", "-o", "m.seglab", "--edge-flux", "8"]
    assert build_parser().parse_args(more).edge_flux == 8.0


# ------------------------------------------------------------------------------------------
# outputs never destroy anything
# ------------------------------------------------------------------------------------------
def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_outputs_never_overwrite_inputs_links_or_devices(files, capsys):
    d = files
    model = d / "m.seglab"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    (d / "link.tif").symlink_to(d / "elsewhere.tif")
    (d / "hard.tif").hardlink_to(d / "img.tif")
    (d / "scr.seglab").hardlink_to(d / "scr.tif")
    (d / "out").mkdir()
    tifffile.imwrite(d / "out" / "img.tif", blobs()[0])  # an input inside the output folder
    os.mkfifo(d / "pipe.tif")
    os.mkfifo(d / "pipe.seglab")
    (d / "locked.tif").write_bytes(b"results of yesterday")
    (d / "locked.tif").chmod(0o444)
    (d / "shut").mkdir(mode=0o555)
    (d / "model.tif").write_bytes(model.read_bytes())  # a model file named by hand
    (d / "img_probabilities.tif").write_bytes((d / "img.tif").read_bytes())
    before = {**_snapshot(d), **{f"out/{k}": v for k, v in _snapshot(d / "out").items()}}
    train = ["train", d / "img.tif", d / "scr.tif"]
    predict = ["predict", model]
    cases = [
        ("img.tif: name a model file .seglab", [*train, "-o", d / "img.tif", *FAST]),
        ("m.tga: name a model file .seglab", [*train, "-o", d / "m.tga", *FAST]),  # read as image
        ("read-only", [*predict, d / "img.tif", "-o", d / "locked.tif"]),
        ("not writable", [*predict, d / "img.tif", "-o", d / "shut" / "p.tif"]),
        ("not writable", [*train, "-o", d / "shut" / "m.seglab", *FAST]),
        ("is the scribbles", [*train, "-o", d / "scr.seglab", *FAST]),  # a hard link
        ("is the image", [*predict, d / "img.tif", "-o", d / "img.tif"]),
        ("is the image", [*predict, d / "img.tif", "-o", d / "hard.tif"]),
        ("is the model", ["predict", d / "model.tif", d / "img.tif", "-o", d / "model.tif"]),
        ("is the image", [*predict, d / "out" / "img.tif", "-o", d / "out"]),
        ("symbolic link", [*predict, d / "img.tif", "-o", d / "link.tif"]),
        ("not a regular file", [*predict, d / "img.tif", "-o", d / "pipe.tif"]),
        ("not a regular file", [*train, "-o", d / "pipe.seglab", *FAST]),
        ("null: name a model file", [*train, "-o", "/dev/null", *FAST]),
        ("writes TIFF", [*predict, d / "img.tif", "-o", d / "p.png"]),
        ("looks like a file name", [*predict, d, "-o", d / "p.tif"]),
    ]
    # the probabilities written beside img.tif would overwrite an input of that name
    prob_in = d / "img_probabilities.tif"
    cases.append(("is the image", [*predict, prob_in, "-o", d / "img.tif", "--probabilities"]))
    # in a folder, img.tif's probabilities and img_probabilities.tif's labels share a name
    cases.append(
        ("two outputs", [*predict, d / "img.tif", prob_in, "-o", d / "o2", "--probabilities"])
    )
    for expected, argv in cases:
        code, err = run(argv, capsys)
        assert code == 2, (expected, argv, err)
        line = one_line_error(code, err)
        assert expected in line, (expected, line)
    after = {**_snapshot(d), **{f"out/{k}": v for k, v in _snapshot(d / "out").items()}}
    assert after == before  # nothing changed, nothing added, nothing half-written
    assert not (d / "elsewhere.tif").exists()
    assert (d / "pipe.tif").is_fifo() and (d / "pipe.seglab").is_fifo()
    assert os.path.exists("/dev/null")
    # training may write over the model it continues from (atomically)
    code, _ = run([*train, "-o", model, "--init", model, *FAST_INIT], capsys)
    assert code == 0 and load_model(model).train_settings["steps_done"] == 3
    # names that differ only before the suffix are different outputs
    tifffile.imwrite(d / "a.b.tif", blobs()[0])
    tifffile.imwrite(d / "a.c.tif", blobs()[0])
    assert run([*predict, d / "a.b.tif", d / "a.c.tif", "-o", d / "o3", "-q"], capsys)[0] == 0
    assert sorted(os.listdir(d / "o3")) == ["a.b.tif", "a.c.tif"]


def test_batch_predict_goes_on_after_a_bad_image(files, capsys):
    d = files
    model = d / "m.seglab"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    tifffile.imwrite(d / "rgb.tif", np.zeros((10, 12, 3), np.uint8))
    tifffile.imwrite(d / "two.tif", blobs(seed=1)[0])
    (d / "notes.png").write_text("not an image")
    images = [d / "img.tif", d / "rgb.tif", d / "missing.tif", d / "notes.png", d / "two.tif"]
    code, err = run(["predict", model, *images, "-o", d / "out"], capsys)
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("seglab: error: ")]
    assert len(errors) == 4, err
    assert "rgb.tif" in errors[0] and "does not exist" in errors[1] and "notes.png" in errors[2]
    assert errors[3] == "seglab: error: 3 of 5 images not predicted"
    assert sorted(os.listdir(d / "out")) == ["img.tif", "two.tif"]
    expected = predict(load_model(model), tifffile.imread(d / "two.tif")).labels
    np.testing.assert_array_equal(tifffile.imread(d / "out" / "two.tif"), expected)


def test_sigterm_while_writing_leaves_no_temporary_file(files, capsys):
    d = files
    model = d / "m.seglab"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    script = (
        "import os, signal, sys, time, tifffile\n"
        "from napari_seglab.cli import main\n"
        "real = tifffile.imwrite\n"
        "def write(path, *a, **k):\n"
        "    real(path, *a, **k)\n"  # half of the work done: the temporary file exists
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
        "tifffile.imwrite = write\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["predict", str(model), str(d / "img.tif"), "-o", str(d / "p.tif")]
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "seglab: terminated"
    assert "Traceback" not in proc.stderr
    assert not (d / "p.tif").exists()
    assert not [p for p in os.listdir(d) if p.startswith(".")]


def test_options_are_checked_before_anything_runs(files, capsys):
    d = files
    model = d / "m.seglab"
    train = ["train", d / "img.tif", d / "scr.tif", "-o", model]
    fast = ["--steps", "3", "--device", "cpu", "-q"]
    cases = [
        ("argument --seed: must be from 0 to", [*train, *fast, "--seed", "-1"]),
        ("argument --seed: must be from 0 to", [*train, *fast, "--seed", str(2**64)]),
        ("argument --threads: must be from 1 to", [*train, *fast, "--threads", "1000"]),
        ("argument --width: must be from 1 to 256", [*train, *fast, "--width", "1000"]),
        ("argument --depth: must be from 1 to 6", [*train, *fast, "--depth", "7"]),
        # 8 billion parameters: refused before a byte is allocated
        ("at most 150 M", [*train, *fast, "--threads", "1", "--width", "256", "--depth", "6"]),
    ]
    for expected, argv in cases:
        code, err = run(argv, capsys)
        assert expected in one_line_error(code, err), (expected, err)
        assert not model.exists()
    assert run([*train, *FAST], capsys)[0] == 0
    code, err = run([*train, *FAST, "--init", model, "--depth", "2"], capsys)
    assert "with --init the model keeps its own architecture" in one_line_error(code, err)
    code, err = run(
        ["predict", model, d / "img.tif", "-o", d / "p.tif", "--threads", "999"], capsys
    )
    assert "argument --threads" in one_line_error(code, err)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": "10"}, "steps must be an integer"),
        ({"steps": 2.5}, "steps must be an integer"),
        ({"tile": 4}, "tile 4 is too small"),
        ({"batch_size": True}, "batch_size must be an integer"),
    ],
)
def test_train_config_refuses_bad_values_when_made(kwargs, message):
    from napari_seglab.core import TrainConfig

    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)
    TrainConfig(steps=np.int64(10), tile=8)  # numpy integers are integers


def test_a_mask_given_as_scribbles_is_one_error_not_hundreds_of_warnings(files, capsys):
    d = files
    mask = np.where(tifffile.imread(d / "scr.tif") == 2, 255, 0).astype(np.uint8)
    argv = ["train", d / "img.tif", _write(d / "mask.tif", mask), "-o", d / "m.seglab", *FAST]
    code, err = run(argv, capsys)
    assert "scribbles hold label 255" in one_line_error(code, err)


def test_a_full_disk_at_save_keeps_the_trained_model(files, capsys, monkeypatch):
    """The disk fills during the save after a whole training: one line, nothing half-written,
    and the model is saved to the temporary folder instead of being lost."""
    from napari_seglab.core import modelio

    d = files
    real = modelio.save_file

    def full_disk(tensors, path, metadata=None):
        if Path(path).parent == d:
            Path(path).write_bytes(b"partial")
            raise RuntimeError("Error while serializing: I/O error: No space left on device")
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(modelio, "save_file", full_disk)
    code, err = run(["train", d / "img.tif", d / "scr.tif", "-o", d / "m.seglab", *FAST], capsys)
    line = one_line_error(code, err)
    assert "No space left on device" in line and "it was saved to" in line
    rescued = Path(line.rsplit("it was saved to ", 1)[1].split(" instead")[0])
    try:
        assert load_model(rescued).num_classes == 2
    finally:
        rescued.unlink()
    assert sorted(os.listdir(d)) == ["img.tif", "scr.tif"]


def test_the_app_without_a_display_is_one_line(monkeypatch, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    for argv in (["gui"], []):
        code, err = run(argv, capsys)
        assert "the app needs a display" in one_line_error(code, err)


def test_a_tiff_of_separate_images_is_refused_and_thumbnails_are_named(files, capsys):
    """Pages written as separate images of one shape (a stack saved plane by plane) would be
    read as their first plane: refused. Images of other shapes (thumbnails) are named."""
    d = files
    image = tifffile.imread(d / "img.tif")
    for plane in range(3):
        tifffile.imwrite(d / "planes.tif", image, append=plane > 0)
    code, err = run(["train", d / "planes.tif", d / "scr.tif", "-o", d / "m.seglab", *FAST], capsys)
    line = one_line_error(code, err)
    assert "holds 3 separate images" in line and "one image per file" in line
    tifffile.imwrite(d / "thumb.tif", image)
    tifffile.imwrite(d / "thumb.tif", image[::8, ::8], append=True)
    code, err = run(["train", d / "thumb.tif", d / "scr.tif", "-o", d / "m.seglab", *FAST], capsys)
    assert code == 0, err
    assert "reading its first image (64, 72)" in err and "(8, 9)" in err


def test_channels_or_planes_are_asked_for(files, capsys):
    """2D scribbles for a 5-plane stack: the CLI asks for --channel-axis instead of reading the
    planes as channels; with it, the 5-channel model predicts a 2D result."""
    d = files
    image = tifffile.imread(d / "img.tif")
    tifffile.imwrite(d / "stack.tif", np.stack([image] * 5))
    argv = ["train", d / "stack.tif", d / "scr.tif", "-o", d / "m.seglab", *FAST]
    line = one_line_error(*run(argv, capsys))
    assert "(5, 64, 72)" in line and "--channel-axis 0" in line
    assert not (d / "m.seglab").exists()
    code, err = run([*argv, "--channel-axis", "0"], capsys)
    assert code == 0, err
    assert load_model(d / "m.seglab").in_channels == 5


def test_a_tiff_that_names_its_channel_axis_is_read_so(files, capsys):
    """An ImageJ or OME-TIFF of axes CYX asked "channels or planes?"; the file says it."""
    d = files
    image = tifffile.imread(d / "img.tif")
    cyx = np.stack([image, image[::-1], image[:, ::-1]])
    tifffile.imwrite(d / "ij.tif", cyx, imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(d / "ome.tif", cyx, ome=True, metadata={"axes": "CYX"})
    for name in ("ij.tif", "ome.tif"):
        model = d / f"{name}.seglab"
        argv = ["train", d / name, d / "scr.tif", "-o", model, *FAST]
        code, err = run(argv, capsys)
        assert code == 0, err
        assert load_model(model).in_channels == 3
        code, err = run(["predict", model, d / name, "-o", d / f"{name}.pred.tif"], capsys)
        assert code == 0, err
        assert tifffile.imread(d / f"{name}.pred.tif").shape == image.shape
    # a file that names its axes ZYX or TYX: 3 planes, not the 3 channels of this model, in
    # memory and block by block
    for axes, what in (("ZYX", "planes"), ("TYX", "time points")):
        tifffile.imwrite(d / "zyx.tif", cyx, photometric="minisblack", metadata={"axes": axes})
        for extra in ([], ["--block", "32"]):
            argv = ["predict", d / "ij.tif.seglab", d / "zyx.tif", "-o", d / "z.tif", *extra]
            line = one_line_error(*run(argv, capsys))
            assert f"says that axis 0 (size 3) holds {what}, not the 3 channels" in line
            assert "--channel-axis" in line and not (d / "z.tif").exists()
    code, err = run([*argv, "--channel-axis", "0"], capsys)  # the user says so
    assert code == 0, err
    assert tifffile.imread(d / "z.tif").shape == image.shape


def test_a_grey_model_and_an_image_of_channels(files, capsys):
    """A grey model predicted a (Y, X, 2) file as 64 planes of 72 x 2 pixels, exit 0; a
    (3, Y, X) file is read as 3 planes, and the note says so."""
    d = files
    model = d / "m.seglab"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    image = tifffile.imread(d / "img.tif")
    tifffile.imwrite(d / "yxc.tif", np.dstack([image, image]))
    line = one_line_error(*run(["predict", model, d / "yxc.tif", "-o", d / "p.tif"], capsys))
    assert "looks like 2 channels (Y, X, C)" in line
    assert not (d / "p.tif").exists()
    tifffile.imwrite(d / "three.tif", np.stack([image] * 3), photometric="minisblack")
    code, err = run(["predict", model, d / "three.tif", "-o", d / "p.tif"], capsys)
    assert code == 0, err
    assert "read as a stack of 3 planes for a one-channel model" in err
    assert tifffile.imread(d / "p.tif").shape == (3, *image.shape)
    # a file that names its planes (depth or time) needs no note; tifffile's Q (an axis of
    # unknown kind) does
    for axes, noted in (("ZYX", False), ("TYX", False), ("QYX", True)):
        stack = np.stack([image] * 3)
        tifffile.imwrite(d / "named.tif", stack, photometric="minisblack", metadata={"axes": axes})
        argv = ["predict", model, d / "named.tif", "-o", d / "p.tif", "--overwrite"]
        code, err = run(argv, capsys)
        assert code == 0, err
        assert ("read as a stack of 3 planes" in err) == noted, axes
        assert tifffile.imread(d / "p.tif").shape == (3, *image.shape)


def test_a_constant_image_is_predicted_with_a_note(files, capsys):
    """Training refuses a constant image; predicting one gives one class, and says why."""
    d = files
    model = d / "m.seglab"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    shape = tifffile.imread(d / "img.tif").shape
    tifffile.imwrite(d / "blank.tif", np.zeros(shape, np.uint16))
    code, err = run(["predict", model, d / "blank.tif", "-o", d / "p.tif"], capsys)
    assert code == 0, err
    assert "note:" in err and "blank.tif: the image is constant (every pixel 0)" in err
    assert tifffile.imread(d / "p.tif").shape == shape
    code, err = run(["predict", model, d / "img.tif", "-o", d / "q.tif"], capsys)
    assert code == 0 and "note:" not in err


def test_a_no_data_margin_is_one_error(files, capsys):
    d = files
    image = tifffile.imread(d / "img.tif").astype(np.float32)
    image[:, :12] = -3.4e38
    tifffile.imwrite(d / "nodata.tif", image)
    argv = ["train", d / "nodata.tif", d / "scr.tif", "-o", d / "m.seglab", *FAST]
    line = one_line_error(*run(argv, capsys))
    assert "-3.4e+38" in line and "no-data" in line


def test_a_full_disk_during_predict_is_named(files, capsys, monkeypatch):
    """A writer's own words for a full disk ("9216 requested and 956 written") become a line
    naming the full disk; nothing half-written is left."""

    d = files
    model = d / "m.seglab"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0

    def full_disk(path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError("9216 requested and 956 written")

    class Usage:
        free = 0

    monkeypatch.setattr(tifffile, "imwrite", full_disk)
    monkeypatch.setattr(seg_io.shutil, "disk_usage", lambda path: Usage)
    code, err = run(["predict", model, d / "img.tif", "-o", d / "pred.tif"], capsys)
    line = one_line_error(code, err)
    assert "no space left on the disk holding" in line and str(d) in line
    assert sorted(os.listdir(d)) == ["img.tif", "m.seglab", "scr.tif"]


def test_labels_and_probabilities_are_written_as_a_set(files, capsys, monkeypatch):
    """When the labels cannot be written, the probabilities written before them are not left
    alone either."""
    d = files
    model = d / "m.seglab"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    real = tifffile.imwrite

    def labels_fail(path, data, *args, **kwargs):
        if data.dtype == np.uint8:
            raise OSError("the labels cannot be written")
        return real(path, data, *args, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", labels_fail)
    argv = ["predict", model, d / "img.tif", "-o", d / "pred.tif", "--probabilities"]
    assert "the labels cannot be written" in one_line_error(*run(argv, capsys))
    assert sorted(os.listdir(d)) == ["img.tif", "m.seglab", "scr.tif"]


def test_batch_output_must_be_a_folder_and_is_not_left_empty(files, capsys):
    d = files
    model = d / "m.seglab"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    tifffile.imwrite(d / "two.tif", blobs(seed=1)[0])
    line = one_line_error(
        *run(["predict", model, d / "img.tif", d / "two.tif", "-o", d / "out.tif"], capsys)
    )
    assert "looks like a file name" in line and not (d / "out.tif").exists()
    code, err = run(["predict", model, d / "missing.tif", d / "gone.tif", "-o", d / "out"], capsys)
    assert code == 2 and "2 of 2 images not predicted" in err
    assert not (d / "out").exists()


def test_predict_says_the_size_up_front_and_shows_progress(files, capsys, monkeypatch):
    """A large image is announced before the long part, and the bar's count (megapixels,
    shown after a second) adds up to every pixel."""
    from napari_seglab.cli import predict_command

    d = files
    model = d / "m.seglab"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    monkeypatch.setattr(predict_command, "LARGE_MEGAPIXELS", 0.004)
    code, err = run(["predict", model, d / "img.tif", "-o", d / "pred.tif"], capsys)
    assert code == 0, err
    assert "img.tif: (64, 72) uint16, 4.61k pixels to predict" in err
    done = []
    predict(load_model(model), tifffile.imread(d / "img.tif"), progress=done.append, tile=32)
    assert sum(done) == 64 * 72 and len(done) > 1


@pytest.mark.parametrize(
    ("pixels", "shown"),
    [(100, "100/100 px"), (64 * 72, "4.61k/4.61k px"), (4000 * 4000, "16.0M/16.0M px")],
)
def test_the_predict_bar_counts_pixels_at_any_size(pixels, shown, monkeypatch):
    """A small image's bar once read "0.0/0.0 Mpx"; it counts pixels with SI prefixes. It is
    drawn in a terminal only (into a log file it wrote hundreds of carriage returns)."""
    import io

    from napari_seglab.cli.predict_command import progress_bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = progress_bar("img.tif", pixels, quiet=False)
    bar.update(pixels)
    assert shown in str(bar) and "100%" in str(bar)
    bar.close()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a file or a pipe
    bar = progress_bar("img.tif", pixels, quiet=False)
    assert bar.disable
    bar.close()


@pytest.mark.parametrize("axis", ["-7", "2", "5"])
def test_a_channel_axis_out_of_range_is_one_error(files, capsys, axis):
    d = files
    model = d / "m.seglab"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    argv = ["predict", model, d / "img.tif", "-o", d / "p.tif", f"--channel-axis={axis}"]
    assert f"channel_axis {axis} is out of range" in one_line_error(*run(argv, capsys))


def test_files_get_the_permissions_of_a_new_file(files, capsys):
    """Model and prediction alike: 0666 less the umask (safetensors alone writes 0600)."""
    d = files
    old = os.umask(0o022)
    try:
        assert (
            run(["train", d / "img.tif", d / "scr.tif", "-o", d / "m.seglab", *FAST], capsys)[0]
            == 0
        )
        assert run(["predict", d / "m.seglab", d / "img.tif", "-o", d / "p.tif"], capsys)[0] == 0
    finally:
        os.umask(old)
    assert (d / "m.seglab").stat().st_mode & 0o777 == 0o644
    assert (d / "p.tif").stat().st_mode & 0o777 == 0o644


def test_train_on_chosen_channels_and_predict_only_images_with_those(tmp_path, capsys):
    image, scribbles = synthetic.blobs((64, 72), n=6, seed=0, channels=3, painted=0.05)[::2]
    tifffile.imwrite(tmp_path / "rgb.tif", image)
    tifffile.imwrite(tmp_path / "scr.tif", scribbles)
    model = tmp_path / "m.seglab"
    argv = ["train", tmp_path / "rgb.tif", tmp_path / "scr.tif", "-o", model, *FAST]
    code, err = run([*argv, "--channels", "0,2"], capsys)
    assert code == 0, err
    assert load_model(model).config.channels == (0, 2)
    out = tmp_path / "out.tif"
    assert run(["predict", model, tmp_path / "rgb.tif", "-o", out], capsys)[0] == 0
    tifffile.imwrite(tmp_path / "two.tif", image[..., :2])
    line = one_line_error(*run(["predict", model, tmp_path / "two.tif", "-o", out], capsys))
    assert "trained on channel(s) 0, 2 of 3-channel images" in line
    line = one_line_error(*run([*argv, "--channels", "0,5"], capsys))
    assert "channel 5 is not in the image: it has 3 channels (0-2)" in line
    line = one_line_error(*run([*argv, "--channels", "1,1"], capsys))
    assert "--channels" in line and "distinct" in line
    line = one_line_error(*run([*argv[:5], "--init", model, *FAST_INIT, "--channels", "1"], capsys))
    assert "--channels make a new model" in line


def _halves(tmp_path):
    """Two images, the first painted only foreground, the second only background."""
    paths = []
    for i, name in enumerate(("a", "b")):
        image, _gt, scribbles = synthetic.blobs((64, 72), n=6, seed=i, painted=0.08)
        keep = 2 if i == 0 else 1
        tifffile.imwrite(tmp_path / f"{name}.tif", image)
        tifffile.imwrite(tmp_path / f"{name}_scribbles.tif", np.where(scribbles == keep, keep, 0))
        paths.append((tmp_path / f"{name}.tif", tmp_path / f"{name}_scribbles.tif"))
    return paths


def test_train_on_several_image_scribbles_pairs_or_a_folder(tmp_path, capsys):
    (a, sa), (b, sb) = _halves(tmp_path)
    model = tmp_path / "m.seglab"
    code, err = run(["train", f"{a}:{sa}", f"{b}:{sb}", "-o", model, *FAST[:-2]], capsys)
    assert code == 0, err
    saved = load_model(model)
    assert saved.train_settings["images"] == 2 and saved.num_classes == 2
    assert saved.train_settings["image_names"] == [str(a), str(b)]
    # a folder: each image with its <name>_scribbles file
    (tmp_path / "notes.txt").write_text("not an image")
    model2 = tmp_path / "m2.seglab"
    code, err = run(["train", tmp_path, "-o", model2, *FAST], capsys)
    assert code == 0, err
    assert load_model(model2).train_settings["image_names"] == [str(a), str(b)]
    # and Apply to a folder
    out = tmp_path / "out"
    code, err = run(["predict", model2, a, b, "-o", out], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "b.tif"]
    # a folder of one image: its labels go to a folder too (no trailing slash needed)
    one = tmp_path / "one"
    one.mkdir()
    tifffile.imwrite(one / "c.tif", tifffile.imread(a))
    tifffile.imwrite(one / "c_scribbles.tif", tifffile.imread(sa))  # not predicted
    code, err = run(["predict", model2, one, "-o", tmp_path / "out_one"], capsys)
    assert code == 0, err
    assert [p.name for p in (tmp_path / "out_one").iterdir()] == ["c.tif"]
    # two images that would write one labels file are named
    tifffile.imwrite(one / "c.tiff", tifffile.imread(a))
    line = one_line_error(*run(["predict", model2, one, "-o", tmp_path / "o2"], capsys))
    assert "c.tif and" in line and "c.tiff would write one labels file" in line


def test_bad_sets_of_pairs_are_one_line_errors(tmp_path, capsys):
    (a, sa), (b, sb) = _halves(tmp_path)
    m = tmp_path / "m.seglab"
    cases = [
        ([f"{a}:{sa}", f"{b}:{tmp_path / 'nope.tif'}"], "nope.tif is not a file"),
        ([f"{a}:{sa}", f"{a}:{sb}"], "a.tif is given twice"),
        ([f"{a}:{sa}", str(tmp_path)], "is a folder"),
        ([str(a)], "not an IMAGE:SCRIBBLES pair"),
        ([str(tmp_path / "m")], "not an IMAGE:SCRIBBLES pair"),
    ]
    for inputs, message in cases:
        line = one_line_error(*run(["train", *inputs, "-o", m, *FAST], capsys))
        assert message in line, (inputs, line)
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(*run(["train", empty, "-o", m, *FAST], capsys))
    assert "holds no image with a scribbles file" in line
    # either image alone has one class: fine together, refused alone
    line = one_line_error(*run(["train", a, sa, "-o", m, *FAST], capsys))
    assert "only class 2" in line  # no warning that class 1 has no strokes before it


def test_an_existing_file_seglab_did_not_write_is_not_replaced(files, capsys):
    """`predict -o scr.tif` replaced the strokes with a dense prediction, exit 0; `train -o`
    replaced any file of a model's name. Files seglab wrote are replaced as before."""
    d = files
    model = d / "m.seglab"
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    assert run(["train", d / "img.tif", d / "scr.tif", "-o", model, *FAST], capsys)[0] == 0
    strokes = tifffile.imread(d / "scr.tif")
    tifffile.imwrite(d / "mine.tif", strokes)  # the user's file, e.g. a copy of the strokes
    line = one_line_error(*run(["predict", model, d / "img.tif", "-o", d / "mine.tif"], capsys))
    assert "exists and was not written by seglab" in line and "--overwrite" in line
    np.testing.assert_array_equal(tifffile.imread(d / "mine.tif"), strokes)
    # seglab's own output is replaced when predicted again; --overwrite replaces the user's
    assert run(["predict", model, d / "img.tif", "-o", d / "p.tif"], capsys)[0] == 0
    assert run(["predict", model, d / "img.tif", "-o", d / "p.tif"], capsys)[0] == 0
    argv = ["predict", model, d / "img.tif", "-o", d / "mine.tif", "--overwrite"]
    assert run(argv, capsys)[0] == 0
    assert (
        tifffile.imread(d / "mine.tif").max() <= 2 and (tifffile.imread(d / "mine.tif") > 0).all()
    )
    # the probabilities file alike
    tifffile.imwrite(d / "q_probabilities.tif", np.zeros((2, 2), np.float32))
    argv = ["predict", model, d / "img.tif", "-o", d / "q.tif", "--probabilities"]
    assert "q_probabilities.tif exists" in one_line_error(*run(argv, capsys))
    # a model's name held by another file
    (d / "other.safetensors").write_bytes(b"not a seglab model")
    argv = ["train", d / "img.tif", d / "scr.tif", "-o", d / "other.safetensors", *FAST]
    assert "is not a napari-seglab model" in one_line_error(*run(argv, capsys))
    assert (d / "other.safetensors").read_bytes() == b"not a seglab model"
    assert run([*argv, "--overwrite"], capsys)[0] == 0
    assert load_model(d / "other.safetensors").num_classes == 2


def test_several_images_each_get_their_strokes_checked(tmp_path, capsys):
    """The pooled recall of a several-image training can hide an image whose strokes the model
    does not reproduce (two images that disagree on what foreground looks like)."""
    image, scribbles = blobs()
    swapped = np.where(scribbles > 0, 3 - scribbles, 0).astype(scribbles.dtype)
    for name, array in [("a", image), ("b", image.copy()), ("c", image.copy())]:
        tifffile.imwrite(tmp_path / f"{name}.tif", array)
    tifffile.imwrite(tmp_path / "sa.tif", scribbles)
    tifffile.imwrite(tmp_path / "sb.tif", swapped)  # b's foreground is a's background
    tifffile.imwrite(tmp_path / "sc.tif", scribbles)
    options = ["--steps", "40", "--threads", "1", "--width", "8", "-q"]
    a = f"{tmp_path / 'a.tif'}:{tmp_path / 'sa.tif'}"
    argv = ["train", a, f"{tmp_path / 'b.tif'}:{tmp_path / 'sb.tif'}", "-o", tmp_path / "m.seglab"]
    code, err = run([*argv, *options], capsys)
    assert code == 0, err
    assert f"warning: {tmp_path / 'b.tif'}: only " in err, err
    assert "the images may not agree on what that class looks like" in err
    argv = ["train", a, f"{tmp_path / 'c.tif'}:{tmp_path / 'sc.tif'}", "-o", tmp_path / "n.seglab"]
    code, err = run([*argv, *options], capsys)
    assert code == 0, err
    assert "may not agree" not in err, err


def test_colour_painted_scribbles_of_a_grey_image_are_named_as_such(files, capsys):
    """Strokes painted in colour on a picture were refused as "scribbles hold label 255"."""
    d = files
    strokes = tifffile.imread(d / "scr.tif")
    colours = np.zeros((*strokes.shape, 3), np.uint8)
    colours[strokes == 1] = (0, 0, 255)
    colours[strokes == 2] = (255, 128, 0)
    from PIL import Image

    Image.fromarray(colours).save(d / "painted.png")
    argv = ["train", d / "img.tif", d / "painted.png", "-o", d / "m.seglab", *FAST]
    line = one_line_error(*run(argv, capsys))
    assert "the scribbles are a colour picture, shape (64, 72, 3)" in line
    assert "shape (64, 72) here" in line
