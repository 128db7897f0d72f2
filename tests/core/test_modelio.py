"""Model files: round trip, and refusal of pickles, foreign and damaged files."""

from __future__ import annotations

import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from napari_seglab.core import ModelFileError, SegModel, load_model, predict, save_model
from napari_seglab.core.data import Normalization
from napari_seglab.core.model import ModelConfig
from napari_seglab.core.modelio import FORMAT_VERSION, HEADER_KEY, model_header, read_header


@pytest.fixture
def model():
    norm = Normalization((10.0, 0.0), (1000.0, 255.0), (1.0, 99.8))
    m = SegModel.create(3, 2, norm, ModelConfig(depth=2, width=4, norm="batch"), seed=0)
    m.net.train()
    with torch.no_grad():
        m.net(torch.randn(2, 2, 32, 32))  # non-trivial batch-norm statistics
    m.net.eval()
    m.train_settings = {"loss": "dice_ce", "steps_done": 12}
    m.class_names = ["background", "cell", "debris"]
    return m


def test_round_trip(tmp_path, model):
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    loaded = load_model(path)
    assert loaded.num_classes == 3 and loaded.in_channels == 2
    assert loaded.normalization == model.normalization
    assert loaded.config == model.config
    assert loaded.class_names == ["background", "cell", "debris"]
    assert loaded.train_settings["steps_done"] == 12
    assert loaded.version == model.version
    for (k, a), (_, b) in zip(
        model.net.state_dict().items(), loaded.net.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    image = np.random.default_rng(0).integers(0, 1000, (2, 40, 30)).astype(np.uint16)
    pa = predict(model, image, channel_axis=0)
    pb = predict(load_model(path), image, channel_axis=0)
    assert np.array_equal(pa.probabilities, pb.probabilities)
    assert read_header(path)["format_version"] == 1  # no optimiser state: readable by all
    assert not [p for p in os.listdir(tmp_path) if p != "m.safetensors"]  # no temp files left


def test_the_old_methods_still_work_and_say_what_replaces_them(tmp_path, model):
    path = tmp_path / "old.seglab"
    image = np.random.default_rng(1).integers(0, 1000, (2, 24, 20)).astype(np.uint16)
    with pytest.warns(DeprecationWarning, match=r"save_model\(model, path\)"):
        model.save(path)
    with pytest.warns(DeprecationWarning, match=r"load_model\(path\)"):
        loaded = SegModel.load(path)
    with pytest.warns(DeprecationWarning, match=r"predict\(model, image"):
        old = loaded.predict(image, channel_axis=0)
    new = predict(load_model(path), image, channel_axis=0)
    np.testing.assert_array_equal(old.probabilities, new.probabilities)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_crafted_pickle_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(path)
    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelFileError, match="PyTorch"):
        load_model(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name", ["image.tif", "model.TIF", "model.pt", "model"])
def test_a_model_is_never_written_under_another_files_name(tmp_path, model, name):
    path = tmp_path / name
    path.write_bytes(b"the user's data")
    with pytest.raises(ValueError, match=r"name a model file \.seglab \(or \.safetensors\)"):
        save_model(model, path)
    assert path.read_bytes() == b"the user's data"
    assert [p.name for p in tmp_path.iterdir()] == [name]
    save_model(model, tmp_path / "model.SEGLAB")  # the suffix in any case


def test_foreign_and_damaged_files(tmp_path, model):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match="not a napari-seglab model"):
        load_model(foreign)

    good = tmp_path / "good.safetensors"
    save_model(model, good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        load_model(truncated)

    text = tmp_path / "text.safetensors"
    text.write_text("hello, this is not a model at all")
    with pytest.raises(ModelFileError):
        load_model(text)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="too short"):
        load_model(empty)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.safetensors")
    with pytest.raises(ModelFileError, match="not a file"):
        load_model(tmp_path)


def _with_header(tmp_path, model, name, change):
    header = model_header(model)
    change(header)
    tensors = {k: v.contiguous() for k, v in model.net.state_dict().items()}
    path = tmp_path / name
    save_file(tensors, str(path), metadata={HEADER_KEY: json.dumps(header)})
    return path


def test_newer_and_inconsistent_headers(tmp_path, model):
    newer = _with_header(tmp_path, model, "new.st", lambda h: h.update(format_version=99))
    with pytest.raises(ModelFileError, match="newer"):
        load_model(newer)
    wrong = _with_header(tmp_path, model, "wrong.st", lambda h: h.update(num_classes=5))
    with pytest.raises(ModelFileError, match="weights do not match"):
        load_model(wrong)
    bad = _with_header(tmp_path, model, "bad.st", lambda h: h["model_config"].update(depth=-1))
    with pytest.raises(ModelFileError, match="invalid model header"):
        load_model(bad)
    # a header that is not JSON
    path = tmp_path / "nojson.st"
    save_file({"w": torch.zeros(1)}, str(path), metadata={HEADER_KEY: "{nope"})
    with pytest.raises(ModelFileError, match="JSON"):
        load_model(path)


def test_huge_declared_header_is_refused(tmp_path):
    path = tmp_path / "huge.st"
    path.write_bytes(struct.pack("<Q", 1 << 60) + b"{}")
    with pytest.raises(ModelFileError, match="not a safetensors"):
        load_model(path)


def test_model_file_error_is_value_error():
    assert issubclass(ModelFileError, ValueError)


def _norm_change(**values):
    return lambda h: h["normalization"].update(values)


@pytest.mark.parametrize(
    "change, message",
    [
        (_norm_change(low=[float("nan"), 0.0]), "not finite"),
        (_norm_change(high=[1000.0, float("inf")]), "not finite"),
        (_norm_change(low=[10.0, 255.0]), "range is empty"),  # low == high
        (_norm_change(low=[2000.0, 0.0]), "range is empty"),
        (_norm_change(percentiles=[]), "invalid model header"),
        (lambda h: h.update(num_classes=1_000_000_000), "num_classes"),
        (lambda h: h.update(num_classes=300), "num_classes"),
        (lambda h: h.update(in_channels=100_000), "in_channels"),
        # sizes that would ask for tens of GB if built before the weights were compared
        (lambda h: h["model_config"].update(width=256, depth=6), "at most 150 M"),
        (lambda h: h["model_config"].update(width=64, depth=4), "weights do not match"),
        (lambda h: h["model_config"].update(width=8), "has shape"),
    ],
)
def test_damaged_headers_are_refused_before_anything_is_built(tmp_path, model, change, message):
    path = _with_header(tmp_path, model, "m.seglab", change)
    with pytest.raises(ModelFileError, match=message) as err:
        load_model(path)
    assert str(path) in str(err.value)


def test_non_finite_weights_are_refused(tmp_path, model):
    with torch.no_grad():
        next(iter(model.net.parameters()))[0].fill_(float("nan"))
    path = tmp_path / "nan.seglab"
    save_file(
        {k: v.contiguous() for k, v in model.net.state_dict().items()},
        str(path),
        metadata={HEADER_KEY: json.dumps(model_header(model))},
    )
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        load_model(path)


def test_a_deeply_nested_header_is_refused(tmp_path):
    path = tmp_path / "nested.seglab"
    save_file({"w": torch.zeros(1)}, str(path), metadata={HEADER_KEY: "[" * 100_000})
    with pytest.raises(ModelFileError, match="JSON"):
        load_model(path)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["nuclei"], ["nuclei", "foreground", "class 3"]),
        (["a", "b", "c", "d"], ["a", "b", "c"]),
        ("abc", ["background", "foreground", "class 3"]),
        (None, ["background", "foreground", "class 3"]),
    ],
)
def test_class_names_always_match_the_classes(tmp_path, model, names, expected):
    """Class names are cosmetic: a header list of another length (or not a list) is completed
    or cut, so that every class has exactly one name."""
    path = _with_header(tmp_path, model, "m.seglab", lambda h: h.update(class_names=names))
    assert load_model(path).class_names == expected


def _adam_state(model) -> dict:
    optimizer = torch.optim.Adam(model.net.parameters(), lr=1e-3)
    model.net.train()
    model.net(torch.randn(2, 2, 32, 32)).sum().backward()
    optimizer.step()
    model.net.eval()
    return optimizer.state_dict()


def test_the_optimiser_state_travels_with_the_model(tmp_path, model):
    model.optimizer_state = _adam_state(model)
    path = save_model(model, tmp_path / "m.seglab")
    assert read_header(path)["format_version"] == FORMAT_VERSION == 2
    state = load_model(path).optimizer_state
    assert state["state"].keys() == model.optimizer_state["state"].keys()
    for i, values in model.optimizer_state["state"].items():
        assert state["state"][i].keys() == values.keys()
        assert all(torch.equal(state["state"][i][k], v) for k, v in values.items())
    # an optimiser made for the loaded weights takes it as it is
    loaded = load_model(path)
    torch.optim.Adam(loaded.net.parameters()).load_state_dict(loaded.optimizer_state)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("shape", "has shape"),
        ("nan", "NaN or infinite"),
        ("index", "no such parameter"),
        ("groups", "do not hold the network's"),
    ],
)
def test_a_damaged_optimiser_state_is_refused(tmp_path, model, damage, message):
    from napari_seglab.core.modelio import _optimizer_tensors

    model.optimizer_state = _adam_state(model)
    tensors, meta = _optimizer_tensors(model.optimizer_state)
    key = "optimizer/0/exp_avg"
    if damage == "shape":
        tensors[key] = torch.zeros(3)
    elif damage == "nan":
        tensors[key] = torch.full_like(tensors[key], float("nan"))
    elif damage == "index":
        tensors["optimizer/999/exp_avg"] = torch.zeros(1)
    else:
        meta["param_groups"][0]["params"] = meta["param_groups"][0]["params"][:-1]
    header = {**model_header(model), "optimizer": meta}
    path = tmp_path / "m.seglab"
    weights = {k: v.contiguous() for k, v in model.net.state_dict().items()}
    save_file({**weights, **tensors}, str(path), metadata={HEADER_KEY: json.dumps(header)})
    with pytest.raises(ModelFileError, match=f"optimiser state does not fit.*{message}"):
        load_model(path)
