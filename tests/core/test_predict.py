"""Tiled prediction: equals whole-image prediction, regions, layouts, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_seglab.core.data import Normalization
from napari_seglab.core.inference import (
    Prediction,
    blend_window,
    default_overlap,
    default_tile,
    predict,
    tile_starts,
)
from napari_seglab.core.model import ModelConfig, SegModel


def trained_like(num_classes=2, in_channels=1, config=None, seed=0):
    """A model with random weights and non-trivial batch-norm statistics."""
    norm = Normalization((0.0,) * in_channels, (1.0,) * in_channels)
    config = config or ModelConfig(norm="batch")
    model = SegModel.create(num_classes, in_channels, norm, config, seed=seed)
    model.net.train()
    with torch.no_grad():
        for _ in range(3):
            model.net(torch.randn(2, model.net.in_channels, 64, 64) * 2 + 0.5)
    model.net.eval()
    return model


@pytest.mark.parametrize(("n", "tile", "overlap"), [(10, 16, 4), (100, 32, 8), (97, 40, 10)])
def test_tile_starts_cover(n, tile, overlap):
    starts = tile_starts(n, tile, overlap)
    t = min(n, tile)
    covered = np.zeros(n, bool)
    for s in starts:
        covered[s : s + t] = True
        assert 0 <= s <= n - t
    assert covered.all()
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))


def test_blend_window():
    w = blend_window(64, 16)
    assert w.shape == (64,) and w.dtype == np.float32
    assert np.all(w > 0) and w[32] == 1.0 and w[0] < 0.01
    assert np.allclose(w, w[::-1])


@pytest.mark.parametrize("shape", [(147, 131), (90, 203)])
def test_tiled_equals_whole_image(shape):
    rng = np.random.default_rng(0)
    model = trained_like(3, config=ModelConfig(norm="batch", width=8, bias=False))
    with torch.no_grad():
        model.net.head.weight.mul_(20.0)  # confident outputs, like a trained model's
    image = rng.normal(size=shape).astype(np.float32)
    whole = predict(model, image, tile=1024)
    assert isinstance(whole, Prediction)
    assert whole.labels.shape == shape and whole.labels.dtype == np.uint8
    assert whole.probabilities.shape == (3, *shape) and whole.probabilities.dtype == np.float32
    assert np.allclose(whole.probabilities.sum(0), 1.0, atol=1e-5)
    for tile, overlap in [(64, 24), (80, 40)]:
        tiled = predict(model, image, tile=tile, overlap=overlap)
        diff = np.abs(tiled.probabilities - whole.probabilities)
        assert diff.mean() < 5e-4
        assert diff.max() < 0.02
        # an untrained model is unsure almost everywhere: compare labels where it is not
        top2 = np.sort(whole.probabilities, axis=0)[-2:]
        sure = top2[1] - top2[0] > 0.05
        assert sure.mean() > 0.2
        assert (tiled.labels == whole.labels)[sure].mean() > 0.999


@pytest.mark.parametrize("shape", [(61, 57), (45, 50)])
def test_an_image_smaller_than_the_crop_is_shown_as_in_training(shape):
    """Training pads the crops of an image smaller than the crop on both sides; prediction,
    in memory and block-wise, shows the network the same pixels at the same places (padded
    after the image only, a 61x57 stack's first columns came back as the other class)."""
    import dask.array as da

    from napari_seglab.core.blockwise import predict_dask
    from napari_seglab.core.data import as_zcyx
    from napari_seglab.core.sampling import CropSampler

    model = trained_like(2, config=ModelConfig(norm="group"))
    model.train_settings["crop_size"] = 64
    image = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    image[:, :3] += 3.0  # a bright band on the first columns
    view = as_zcyx(image)
    labels = np.zeros(shape, np.uint8)
    labels[5, 5] = 1
    sampler = CropSampler(
        view, labels, model.normalization, 64, model.config.multiple, np.random.default_rng(0)
    )
    crop = sampler.uniform_batch(1)  # the one crop such an image has, wherever it is taken
    (ch, cw), (H, W) = crop.shape[-2:], shape
    oy, ox = (ch - H) // 2, (cw - W) // 2
    assert oy > 0 and ox > 0  # padded before the image, as the network learnt it
    with torch.no_grad():
        seen = model.probabilities(model.net(torch.from_numpy(crop))).numpy()[0]
    expected = seen[:, oy : oy + H, ox : ox + W]
    whole = predict(model, image).probabilities
    np.testing.assert_allclose(whole, expected, atol=1e-5)
    # a part (as the viewer's preview asks for) is cut from the same view
    part = predict(model, image, region=(slice(10, 20), slice(30, None))).probabilities
    np.testing.assert_allclose(part, expected[:, 10:20, 30:], atol=1e-5)
    lazy = predict_dask(model, da.from_array(image, chunks=(32, 32)), probabilities=True)
    np.testing.assert_allclose(lazy.probabilities.compute(), expected, atol=1e-5)


def test_tiled_group_norm_close_to_whole_image():
    """Group norm measures statistics per tile, so tiles change the result a little."""
    rng = np.random.default_rng(4)
    model = trained_like(2, config=ModelConfig(norm="group"))
    image = rng.normal(size=(160, 200)).astype(np.float32)
    whole = predict(model, image, tile=1024)
    tiled = predict(model, image, tile=96, overlap=32)
    assert np.abs(tiled.probabilities - whole.probabilities).mean() < 0.05
    assert (tiled.labels == whole.labels).mean() > 0.95
    # an image no larger than the tile is predicted in one piece: identical
    same = predict(model, image, tile=256, overlap=32)
    assert np.allclose(same.probabilities, whole.probabilities, atol=1e-5)


def test_region_matches_full_prediction():
    rng = np.random.default_rng(1)
    model = trained_like(2)
    image = rng.normal(size=(150, 180)).astype(np.float32)
    full = predict(model, image, tile=64, overlap=24)
    part = predict(model, image, tile=64, overlap=24, region=(slice(40, 100), slice(90, None)))
    assert part.labels.shape == (60, 90)
    assert np.abs(part.probabilities - full.probabilities[:, 40:100, 90:]).max() < 0.05
    with pytest.raises(ValueError, match="region"):
        predict(model, image, region=(slice(0, 10),))


def test_a_region_of_an_image_the_size_of_the_crop_is_not_shifted():
    """A region's window (62 rows here) shorter than the crop of an image that is not: the
    window is padded after it, as the whole image's tiles are, not centred (a shift by a pixel
    changes what the network's pooling sees)."""
    model = trained_like(2)  # batch norm: a region equals the whole prediction exactly
    model.train_settings["crop_size"] = 64
    image = np.random.default_rng(3).normal(size=(64, 64)).astype(np.float32)
    full = predict(model, image, tile=64, overlap=32)
    region = (slice(10, 30), slice(20, 50))
    part = predict(model, image, tile=64, overlap=32, region=region)
    np.testing.assert_allclose(
        part.probabilities, full.probabilities[(slice(None), *region)], atol=1e-5
    )


def test_stack_is_predicted_slice_wise():
    rng = np.random.default_rng(2)
    model = trained_like(2, config=ModelConfig(width=4))
    stack = rng.normal(size=(3, 40, 50)).astype(np.float32)
    pred = predict(model, stack)
    assert pred.labels.shape == (3, 40, 50)
    assert pred.probabilities.shape == (2, 3, 40, 50)
    one = predict(model, stack[1])
    assert np.allclose(one.probabilities, pred.probabilities[:, 1], atol=1e-5)
    part = predict(model, stack, region=(slice(1, 2), slice(None), slice(10, 20)))
    assert part.labels.shape == (1, 40, 10)


def test_rgb_layouts_and_no_probabilities():
    rng = np.random.default_rng(3)
    model = trained_like(2, in_channels=3, config=ModelConfig(width=4))
    rgb = (rng.random((30, 40, 3)) * 255).astype(np.uint8)
    a = predict(model, rgb, probabilities=False)
    assert a.probabilities is None and a.labels.shape == (30, 40)
    b = predict(model, np.moveaxis(rgb, -1, 0))
    assert np.array_equal(a.labels, b.labels)
    with pytest.raises(ValueError, match="channel"):
        predict(model, rgb[..., 0])


def test_sigmoid_model_gives_two_channels():
    model = trained_like(2, config=ModelConfig(width=4, binary_mode="sigmoid"))
    pred = predict(model, np.random.default_rng(0).normal(size=(20, 30)))
    assert pred.probabilities.shape == (2, 20, 30)
    assert np.array_equal(pred.labels, np.argmax(pred.probabilities, 0) + 1)


def test_bad_prediction_input():
    model = trained_like(2, config=ModelConfig(width=4))
    image = np.zeros((20, 20), np.float32)
    image[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predict(model, image)
    with pytest.raises(ValueError, match="overlap"):
        predict(model, np.zeros((20, 20)), tile=32, overlap=32)


def test_z_context_uses_neighbouring_slices():
    model = trained_like(2, config=ModelConfig(width=4, z_context=1, norm="batch"))
    assert model.net.in_channels == 3
    rng = np.random.default_rng(5)
    stack = rng.normal(size=(4, 24, 28)).astype(np.float32)
    pred = predict(model, stack)
    changed = stack.copy()
    changed[0] += 5.0
    again = predict(model, changed)
    # slice 1 sees slice 0, slice 3 does not
    assert not np.allclose(pred.probabilities[:, 1], again.probabilities[:, 1])
    assert np.allclose(pred.probabilities[:, 3], again.probabilities[:, 3])


@pytest.mark.gpu
def test_cuda_prediction_matches_cpu():
    model = trained_like(2, config=ModelConfig(width=8))
    image = np.random.default_rng(6).normal(size=(300, 280)).astype(np.float32)
    cpu = predict(model, image, tile=128, overlap=32)
    gpu = predict(model, image, tile=128, overlap=32, device="cuda")
    assert model.device.type == "cpu"  # moved back after predicting
    assert np.abs(cpu.probabilities - gpu.probabilities).mean() < 0.01  # bf16/fp16 autocast


def test_group_norm_models_predict_in_tiles_the_size_of_their_training_crops():
    """Group norm normalises with the statistics of the whole input: a network trained on 64 px
    crops is run on tiles of 64 px, not on the whole image."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    batch = trained_like()
    group = trained_like(config=ModelConfig(norm="group"))
    assert default_tile(cpu) == default_tile(cpu, batch) == 512
    assert default_tile(cuda, batch) == 1024
    assert default_tile(cpu, group) == default_tile(cuda, group) == 64
    group.train_settings["crop_size"] = 48
    assert default_tile(cpu, group) == 48
    image = np.random.default_rng(0).random((300, 260)).astype(np.float32)
    image[:40] += 3.0  # a bright band: the whole-image statistics differ from a tile's
    default = predict(group, image).probabilities
    assert np.array_equal(default, predict(group, image, tile=48).probabilities)
    assert not np.allclose(default, predict(group, image, tile=512).probabilities, atol=1e-4)


@pytest.mark.parametrize(
    ("tile", "expected"), [(8, 4), (32, 16), (48, 24), (64, 32), (128, 32), (512, 64)]
)
def test_default_overlap_is_less_than_the_tile(tile, expected):
    assert default_overlap(tile) == expected


@pytest.mark.parametrize("crop", [16, 32, 48])
def test_group_norm_model_trained_on_small_crops_predicts_with_default_tiles(crop):
    """Tiles the size of a small training crop need an overlap smaller than the tile."""
    group = trained_like(config=ModelConfig(norm="group", width=8))
    group.train_settings["crop_size"] = crop
    image = np.random.default_rng(0).random((70, 90)).astype(np.float32)
    pred = predict(group, image)
    assert pred.labels.shape == image.shape


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_batched_tiles_give_the_tile_by_tile_result(norm):
    """The CPU default batches small tiles; per-tile normalisation keeps the result."""
    from napari_seglab.core.inference import default_batch_size

    assert default_batch_size(torch.device("cpu"), 64) == 16
    assert default_batch_size(torch.device("cpu"), 512) == 1
    model = trained_like(config=ModelConfig(norm=norm, width=8, depth=2))
    image = np.random.default_rng(3).random((150, 170)).astype(np.float32)
    one = predict(model, image, tile=32, overlap=16, batch_size=1)
    default = predict(model, image, tile=32, overlap=16)
    np.testing.assert_allclose(default.probabilities, one.probabilities, atol=1e-5)
    np.testing.assert_array_equal(default.labels, one.labels)


@pytest.mark.parametrize("channels", [2, 5, 8])
def test_a_grey_model_refuses_channels_last_instead_of_reading_a_stack(channels):
    """(303, 384, 2) was predicted as 303 planes of 384 x 2 pixels, exit 0; training reads the
    same file as 2 channels."""
    model = trained_like(2, config=ModelConfig(width=4))
    image = np.random.default_rng(0).random((40, 50, channels)).astype(np.float32)
    with pytest.raises(ValueError, match=f"looks like {channels} channels \\(Y, X, C\\)"):
        predict(model, image)


def test_a_grey_model_reads_a_singleton_channel_and_a_stack():
    model = trained_like(2, config=ModelConfig(width=4))
    rng = np.random.default_rng(0)
    plane = rng.random((40, 50)).astype(np.float32)
    expected = predict(model, plane).labels
    np.testing.assert_array_equal(predict(model, plane[..., None]).labels, expected)  # (Y, X, 1)
    np.testing.assert_array_equal(predict(model, plane[None]).labels[0], expected)  # one plane
    assert predict(model, rng.random((12, 40, 50)).astype(np.float32)).labels.shape == (12, 40, 50)


def test_one_plane_painted_in_2d_is_no_question():
    """(1, 61, 57) with (61, 57) scribbles asked "1 channels, or 1 planes of a stack?"."""
    from napari_seglab.core.data import as_zcyx

    view = as_zcyx(np.zeros((1, 61, 57), np.float32), spatial_shape=(61, 57))
    assert view.spatial_shape == (61, 57) and view.channels == 1


def test_a_constant_image_is_one_colour_in_the_channels_the_model_sees():
    """A picture of one colour (each channel constant, the channels different) is constant;
    a model that sees one channel of two notes an image blank in that channel only."""
    from synthetic import blobs

    from napari_seglab.core.training import TrainConfig, train

    image, _, scribbles = blobs((48, 48))
    two = np.stack([image, image[::-1]], axis=-1)
    fast = {"steps": 2, "num_threads": 1, "preview_every": 0, "final_prediction": False}
    config = TrainConfig(model=ModelConfig(width=4, channels=(0,)), **fast)
    model = list(train(two, scribbles, config))[-1].model
    blank0 = np.stack([np.zeros_like(image), image], axis=-1)
    assert (
        "constant (every pixel 0 in channel 0, the one the model sees)"
        in (predict(model, blank0).notes[0])
    )
    assert predict(model, np.stack([image, np.zeros_like(image)], axis=-1)).notes == ()
    rgb = list(train(np.stack([image] * 3, axis=-1), scribbles, TrainConfig(**fast)))[-1].model
    colour = np.broadcast_to(np.uint16([10, 120, 250]), (48, 48, 3))
    assert "constant (every pixel (10, 120, 250))" in predict(rgb, colour).notes[0]
    one_constant = np.stack([image, image, np.full_like(image, 9)], axis=-1)
    assert predict(rgb, one_constant).notes == ()
