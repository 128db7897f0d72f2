"""The training generator: learns, accepts new scribbles, stops cleanly, warm-starts."""

from __future__ import annotations

import dataclasses
import re
from typing import get_args

import numpy as np
import pytest
import torch
from synthetic import blobs

from napari_seglab.core import losses as seg_losses
from napari_seglab.core import training as core_training
from napari_seglab.core.config import DEFAULT_Z_CONTEXT
from napari_seglab.core.data import Normalization, as_zcyx
from napari_seglab.core.guard import (
    DEFAULT_LAMBDA_EDGE,
    EDGE_NOISE_FACTOR,
    EDGE_SIGMA_MIN,
    noise_level,
)
from napari_seglab.core.inference import predict
from napari_seglab.core.losses.registry import LOSSES, LossName, build_loss
from napari_seglab.core.model import ModelConfig
from napari_seglab.core.optim import ema_with_warmup
from napari_seglab.core.training import TrainConfig, TrainReport, make_loss, train
from napari_seglab.core.weights import class_weights

FAST = {"device": "cpu", "num_threads": 1, "crop_size": 64, "batch_size": 4}


def iou(pred, gt):
    return (pred & gt).sum() / max(1, (pred | gt).sum())


def run(gen):
    reports = list(gen)
    return reports


def test_learns_blobs():
    image, gt, scribbles = blobs()
    cfg = TrainConfig(
        steps=100, model=ModelConfig(width=16), class_weighting="inverse_frequency", **FAST
    )
    reports = run(train(image, scribbles, cfg))
    last = reports[-1]
    assert isinstance(last, TrainReport)
    assert last.done and last.step == 100 and len(reports) == 100
    assert not any(r.done for r in reports[:-1])
    assert last.prediction is not None
    assert last.prediction.labels.shape == gt.shape
    assert last.prediction.probabilities.shape == (2, *gt.shape)
    assert iou(last.prediction.labels == 2, gt) > 0.8
    assert np.mean([r.loss for r in reports[-10:]]) < np.mean([r.loss for r in reports[:10]])
    assert set(last.parts) == {"dice", "ce", "edge"}  # the edge regulariser is on by default
    assert last.counts.tolist() == [(scribbles == 1).sum(), (scribbles == 2).sum()]
    assert last.class_weights.shape == (2,)
    assert last.class_weights[1] > last.class_weights[0]  # fewer foreground pixels
    assert last.device == "CPU, 1 thread"
    assert all(r.model is last.model for r in reports)
    assert not last.model.net.training


def test_no_class_weights_by_default():
    """The loss study found inverse-frequency weights over-segment: weighting is opt-in."""
    assert TrainConfig().class_weighting == "none"
    image, _gt, scribbles = blobs()
    report = next(train(image, scribbles, TrainConfig(steps=1, **FAST)))
    np.testing.assert_array_equal(report.class_weights, [1.0, 1.0])


def test_return_value_is_model():
    image, _, scribbles = blobs((40, 40))
    gen = train(image, scribbles, TrainConfig(steps=3, **FAST))
    reports = []
    with pytest.raises(StopIteration) as stop:
        while True:
            reports.append(next(gen))
    assert stop.value.value is reports[-1].model


def test_send_new_scribbles_mid_run():
    image, gt, scribbles = blobs((64, 64))
    cfg = TrainConfig(steps=10, class_weighting="inverse_frequency", **FAST)
    gen = train(image, scribbles, cfg)
    first = next(gen)
    assert first.step == 1
    more = scribbles.copy()
    more[gt & (scribbles == 0)] = 2  # paint much more foreground
    report = gen.send(more)
    assert report.step == 2
    assert report.counts[1] == (more == 2).sum()
    assert report.class_weights[1] < first.class_weights[1]
    # the new scribbles may add a class the model has; not one beyond it
    bad = more.copy()
    bad[0, 0] = 3
    with pytest.raises(ValueError, match="label 3"):
        gen.send(bad)


def test_send_wrong_shape_raises():
    image, _, scribbles = blobs((40, 40))
    gen = train(image, scribbles, TrainConfig(steps=5, **FAST))
    next(gen)
    with pytest.raises(ValueError, match="does not match"):
        gen.send(scribbles[:-1])


def test_close_stops_cleanly_and_restores_threads():
    before = torch.get_num_threads()
    image, _, scribbles = blobs((40, 40))
    gen = train(
        image, scribbles, TrainConfig(seconds=None, steps=None, **{**FAST, "num_threads": 1})
    )
    for _ in range(3):
        report = next(gen)
    assert not report.done
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)
    assert torch.get_num_threads() == before
    assert not report.model.net.training


def test_a_failed_set_up_leaves_the_network_and_threads_as_after_a_run(monkeypatch):
    """An error while a run is set up (here the crop sampler's) still puts the network in eval
    mode (on the CPU) and gives torch its thread count back."""

    def broken(*args, **kwargs):
        raise MemoryError("no room for the crops")

    monkeypatch.setattr(core_training, "CropSampler", broken)
    image, _gt, scribbles = blobs((32, 32))
    model = core_training.SegModel.create(2, 1, Normalization.fit(as_zcyx(image)))
    before = torch.get_num_threads()
    with pytest.raises(MemoryError):
        next(train(image, scribbles, TrainConfig(steps=2, num_threads=before + 1), model))
    assert not model.net.training
    assert torch.get_num_threads() == before


def test_time_budget():
    image, _, scribbles = blobs((40, 40))
    reports = run(train(image, scribbles, TrainConfig(seconds=0.5, **FAST)))
    assert reports[-1].done
    assert reports[-1].elapsed >= 0.5
    assert reports[-2].elapsed < 0.5 if len(reports) > 1 else True


def test_seed_reproducible_on_cpu():
    image, _, scribbles = blobs((48, 48))
    a = [r.loss for r in train(image, scribbles, TrainConfig(steps=5, seed=7, **FAST))]
    b = [r.loss for r in train(image, scribbles, TrainConfig(steps=5, seed=7, **FAST))]
    c = [r.loss for r in train(image, scribbles, TrainConfig(steps=5, seed=8, **FAST))]
    assert a == b
    assert a != c


def test_warm_start_continues_same_model():
    image, _gt, scribbles = blobs((64, 64))
    cfg = TrainConfig(steps=40, model=ModelConfig(width=16), **FAST)
    reports = run(train(image, scribbles, cfg))
    model = reports[-1].model
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    warm = run(train(image, scribbles, TrainConfig(steps=2, **FAST), model=model))
    assert warm[-1].model is model
    # the first warm loss is near the trained loss, far below a fresh start's
    fresh = next(train(image, scribbles, TrainConfig(steps=2, **FAST)))
    assert warm[0].loss < fresh.loss
    changed = any(not torch.equal(before[k], v) for k, v in model.net.state_dict().items())
    assert changed
    # warm start needs the same channels and no label above the model's classes
    more = scribbles.copy()
    more[0, 0] = 3
    with pytest.raises(ValueError, match="model has 2 classes"):
        train(image, more, TrainConfig(steps=1, **FAST), model=model)
    with pytest.raises(ValueError, match="channel"):
        train(np.stack([image] * 3, -1), scribbles, TrainConfig(steps=1, **FAST), model=model)


def test_previews():
    image, _, scribbles = blobs((40, 40))
    cfg = TrainConfig(steps=4, preview_every=1e-9, final_prediction=False, **FAST)
    reports = run(train(image, scribbles, cfg))
    assert all(r.prediction is not None for r in reports)
    cfg = TrainConfig(steps=4, final_prediction=False, **FAST)
    assert all(r.prediction is None for r in train(image, scribbles, cfg))


def test_rgb_multiclass_and_3d():
    image, _gt, scribbles = blobs((48, 56), channels=3)
    s3 = scribbles.copy()
    s3[:5, :5] = 3
    last = run(train(image, s3, TrainConfig(steps=3, **FAST)))[-1]
    assert last.model.in_channels == 3 and last.model.num_classes == 3
    assert last.prediction.probabilities.shape == (3, 48, 56)
    # channels first, chosen explicitly
    chw = np.moveaxis(image, -1, 0)
    last = run(train(chw, s3, TrainConfig(steps=2, channel_axis=0, **FAST)))[-1]
    assert last.prediction.labels.shape == (48, 56)
    # a stack with scribbles on one slice
    stack = np.stack([blobs((40, 40), seed=i)[0] for i in range(4)])
    s = np.zeros(stack.shape, np.uint8)
    s[2] = blobs((40, 40), seed=2)[2]
    last = run(train(stack, s, TrainConfig(steps=3, **FAST)))[-1]
    assert last.prediction.labels.shape == stack.shape


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("binary_mode", ["softmax", "sigmoid"])
def test_every_loss_runs(loss, binary_mode):
    image, _, scribbles = blobs((32, 32))
    cfg = TrainConfig(
        steps=2,
        loss=loss,
        model=ModelConfig(width=4, depth=2, binary_mode=binary_mode),
        final_prediction=False,
        **FAST,
    )
    reports = run(train(image, scribbles, cfg))
    assert np.isfinite([r.loss for r in reports]).all()


@pytest.mark.parametrize(
    "scheme", ["inverse_frequency", "median_frequency", "effective_number", "none"]
)
def test_class_weight_schemes(scheme):
    image, _, scribbles = blobs((32, 32))
    cfg = TrainConfig(steps=1, class_weighting=scheme, final_prediction=False, **FAST)
    r = next(train(image, scribbles, cfg))
    counts = np.bincount(scribbles.ravel(), minlength=3)[1:]
    assert r.counts.tolist() == counts.tolist()
    np.testing.assert_allclose(r.class_weights, class_weights(counts, scheme=scheme), rtol=1e-6)
    if scheme == "none":
        assert r.class_weights.tolist() == [1.0, 1.0]
    else:  # the class painted less weighs more
        rare = int(np.argmin(counts))
        assert r.class_weights[rare] > r.class_weights[1 - rare]


BAD_INPUTS = [
    ("shape", lambda im, s: (im, s[:-1]), "does not match"),
    ("no labels", lambda im, s: (im, np.zeros_like(s)), "no labels"),
    ("one class", lambda im, s: (im, (s > 0).astype(np.uint8)), "only class 1"),
    ("nan", lambda im, s: (np.where(s == 1, np.nan, im.astype(np.float32)), s), "NaN"),
    ("inf", lambda im, s: (np.where(s == 1, np.inf, im.astype(np.float32)), s), "infinite"),
    ("negative label", lambda im, s: (im, s.astype(np.int16) - 1), "negative"),
]


@pytest.mark.parametrize(("name", "make", "match"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs_raise_immediately(name, make, match):
    image, _, scribbles = blobs((32, 32))
    im, s = make(image, scribbles)
    with pytest.raises(ValueError, match=match):
        train(im, s, TrainConfig(steps=1, **FAST))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seconds": -1.0},
        {"seconds": float("nan")},
        {"steps": 0},
        {"loss": "l2"},
        {"class_weighting": "magic"},
        {"device": "tpu"},
        {"num_threads": 0},
        {"preview_every": -1.0},
        {"lr_warmup": -1},
        {"lr_warmup": 2.5},
        {"lr_continued": 0.0},
    ],
)
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_the_optimiser_options_reach_adam_and_the_warm_up_precedes_the_decay(monkeypatch):
    made = []

    class Spy(torch.optim.Adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.rates = []
            made.append(self)

        def step(self, closure=None):
            self.rates.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "Adam", Spy)
    image, _, scribbles = blobs((32, 32))
    for amsgrad, warmup in ((False, 0), (True, 4)):
        config = TrainConfig(
            steps=10, lr=1e-3, amsgrad=amsgrad, lr_warmup=warmup, final_prediction=False, **FAST
        )
        model = run(train(image, scribbles, config))[-1].model
        assert made[-1].param_groups[0]["amsgrad"] is amsgrad
        assert model.train_settings["amsgrad"] is amsgrad
        assert model.train_settings["lr_warmup"] == warmup
    plain, warmed = made[-2].rates, made[-1].rates
    assert len(plain) == len(warmed) == 10
    # held for 70% of the budget, then the cosine decay; the warm-up multiplies the first steps
    assert plain[:7] == pytest.approx([1e-3] * 7)
    assert warmed[:4] == pytest.approx([0.25e-3, 0.5e-3, 0.75e-3, 1e-3])
    assert warmed[4:] == pytest.approx(plain[4:])
    assert plain[-1] < 0.3e-3


def _untrained(image):
    return core_training.SegModel.create(2, 1, Normalization.fit(as_zcyx(image)), ModelConfig())


def test_a_training_that_continues_a_trained_model_steps_at_its_own_rate_if_given():
    image, _, scribbles = blobs((32, 32))
    config = TrainConfig(steps=3, lr=2e-3, final_prediction=False, **FAST)
    model = run(train(image, scribbles, config, model=_untrained(image)))[-1].model
    assert model.train_settings["lr_used"] == pytest.approx(2e-3)
    run(train(image, scribbles, config, model=model))
    assert model.train_settings["lr_used"] == pytest.approx(2e-3)  # by default the same rate
    own = dataclasses.replace(config, lr_continued=5e-4)
    assert own.lr_for(continued=False) == pytest.approx(2e-3)
    untrained = _untrained(image)
    run(train(image, scribbles, own, model=untrained))
    assert untrained.train_settings["lr_used"] == pytest.approx(2e-3)  # never trained
    run(train(image, scribbles, own, model=model))
    assert model.train_settings["lr_used"] == pytest.approx(5e-4)


def test_keeping_the_optimiser_state_by_default_leaves_a_first_training_unchanged():
    image, _, scribbles = blobs((32, 32))
    assert TrainConfig().resume_optimizer is True
    nets = []
    for keep in (True, False):
        config = TrainConfig(steps=6, resume_optimizer=keep, final_prediction=False, **FAST)
        model = run(train(image, scribbles, config))[-1].model
        assert (model.optimizer_state is not None) is keep
        nets.append([p.detach().clone() for p in model.net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*nets, strict=True))


def test_a_continued_training_resumes_the_optimiser_state_of_the_last():
    image, _, scribbles = blobs((32, 32))
    config = TrainConfig(steps=5, resume_optimizer=True, final_prediction=False, **FAST)
    model = run(train(image, scribbles, config))[-1].model
    state = model.optimizer_state
    assert {float(s["step"]) for s in state["state"].values()} == {5.0}
    tensors = [t for s in state["state"].values() for t in s.values() if torch.is_tensor(t)]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    before = {k: v["exp_avg_sq"].clone() for k, v in state["state"].items()}
    again = dataclasses.replace(config, steps=3, lr_continued=1e-4)
    run(train(image, scribbles, again, model=model))
    after = model.optimizer_state
    assert {float(s["step"]) for s in after["state"].values()} == {8.0}
    assert after["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.05)  # this run's rate, decayed
    # the second moments carry the first training's gradients (a fresh Adam's would not)
    for k, v in before.items():
        assert bool((after["state"][k]["exp_avg_sq"] >= 0.999**3 * v * (1 - 1e-6)).all())
    # without the option nothing is kept, and the next training starts a fresh Adam
    plain = dataclasses.replace(again, resume_optimizer=False)
    run(train(image, scribbles, plain, model=model))
    assert model.optimizer_state is None


def test_a_training_continued_from_a_saved_model_is_the_one_continued_in_memory(tmp_path):
    """The file carries the optimiser state: `seglab train --init` and the widget's Load model
    continue as a second click on Train does (a fresh Adam lost thin vessels there)."""
    import copy

    from napari_seglab.core.modelio import load_model, save_model

    image, _, scribbles = blobs((32, 32))
    config = TrainConfig(steps=5, seed=0, final_prediction=False, **FAST)
    model = run(train(image, scribbles, config))[-1].model
    loaded = load_model(save_model(model, tmp_path / "m.seglab"))
    for i, values in model.optimizer_state["state"].items():
        for name, value in values.items():
            assert torch.equal(loaded.optimizer_state["state"][i][name], value), (i, name)
    assert loaded.optimizer_state["param_groups"] == [
        {**g, "betas": tuple(g["betas"])} for g in model.optimizer_state["param_groups"]
    ]
    again = dataclasses.replace(config, steps=4, seed=1)
    in_memory = copy.deepcopy(model)
    run(train(image, scribbles, again, model=in_memory))
    run(train(image, scribbles, again, model=loaded))
    for a, b in zip(in_memory.net.parameters(), loaded.net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert {float(s["step"]) for s in loaded.optimizer_state["state"].values()} == {9.0}
    # a model without the state (resume_optimizer off) is saved as before, format version 1
    plain = run(train(image, scribbles, dataclasses.replace(config, resume_optimizer=False)))
    path = save_model(plain[-1].model, tmp_path / "plain.seglab")
    assert load_model(path).optimizer_state is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_cuda_is_a_value_error():
    image, _, scribbles = blobs((32, 32))
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(image, scribbles, TrainConfig(device="cuda"))


@pytest.mark.gpu
def test_cuda_training_releases_memory():
    image, gt, scribbles = blobs((96, 96))
    cfg = TrainConfig(steps=150, device="cuda", crop_size=64, batch_size=4)
    reports = run(train(image, scribbles, cfg))
    assert reports[-1].device.startswith("CUDA")
    assert iou(reports[-1].prediction.labels == 2, gt) > 0.8
    assert reports[-1].model.device.type == "cpu"
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() < 2**20  # nothing of the training left on the GPU


def test_stacks_get_slice_context():
    stack = np.stack([blobs((40, 40), seed=i)[0] for i in range(4)])
    s = np.zeros(stack.shape, np.uint8)
    s[1] = blobs((40, 40), seed=1)[2]
    model = run(train(stack, s, TrainConfig(steps=2, **FAST)))[-1].model
    assert model.config.z_context == DEFAULT_Z_CONTEXT == 4
    assert model.net.in_channels == 9  # the slice and four neighbours on each side
    assert predict(model, stack[2]).labels.shape == (40, 40)  # a 2D image repeats its slice
    flat = run(train(stack, s, TrainConfig(steps=1, model=ModelConfig(z_context=0), **FAST)))
    assert flat[-1].model.net.in_channels == 1
    image, _, scribbles = blobs((40, 40))
    assert (
        run(train(image, scribbles, TrainConfig(steps=1, **FAST)))[-1].model.config.z_context == 0
    )


@pytest.mark.parametrize("sigmoid", [False, True])
def test_dice_focal_focal_part_matches_the_model_activation(sigmoid):
    """A softmax model gets a softmax focal part, a sigmoid model a sigmoid one."""
    loss = make_loss(TrainConfig(loss="dice_focal"), None, sigmoid)
    assert loss.focal.use_softmax is (not sigmoid)


def test_the_registry_names_every_loss_once_and_builds_each():
    """The loss names the type checker knows are the registry's, in its order; each entry
    builds a module for softmax and sigmoid models that gives a finite loss."""
    assert tuple(LOSSES) == get_args(LossName)
    logits = torch.randn(2, 2, 8, 8)
    target = torch.randint(0, 2, (2, 1, 8, 8))
    mask = torch.rand(2, 1, 8, 8) > 0.5
    for name in LOSSES:
        for sigmoid in (False, True):
            x = logits[:, :1] if sigmoid else logits
            loss = build_loss(name, torch.tensor([1.0, 2.0]), sigmoid)
            assert torch.isfinite(loss(x, target, mask=mask)), (name, sigmoid)
    with pytest.raises(ValueError, match="unknown loss 'jaccard'"):
        build_loss("jaccard")


def test_the_old_name_of_the_weighting_scheme_still_works_and_warns():
    with pytest.warns(DeprecationWarning, match="class_weighting"):
        config = TrainConfig(steps=3, class_weights="median_frequency")
    assert config == TrainConfig(steps=3, class_weighting="median_frequency")
    assert dataclasses.replace(config, steps=4).class_weighting == "median_frequency"


def test_both_names_of_the_weighting_scheme_at_once_are_refused():
    with pytest.raises(TypeError, match="class_weighting only"):
        TrainConfig(class_weights="none", class_weighting="median_frequency")


def test_the_modules_of_0_1_say_where_their_contents_went():
    """``napari_seglab.core.train`` / ``.predict`` are the functions; importing the old
    modules of those names says where their contents went, and the functions stay."""
    with pytest.raises(ModuleNotFoundError, match=r"became napari_seglab.core.training"):
        exec("from napari_seglab.core.train import TrainConfig")
    with pytest.raises(ModuleNotFoundError, match=r"became napari_seglab.core.inference"):
        exec("import napari_seglab.core.predict")
    from napari_seglab.core import predict as predict_function
    from napari_seglab.core import train as train_function

    assert train_function is train and predict_function is predict


def test_a_loss_module_for_loss_fn_is_refused_with_what_to_give():
    image, _gt, scribbles = blobs((32, 32))
    module = seg_losses.DiceLoss(softmax=True, to_onehot_y=True)
    with pytest.raises(TypeError, match=r"a factory \(weight, sigmoid\).*lambda weight, sigmoid"):
        train(image, scribbles, TrainConfig(steps=1, **FAST), loss_fn=module)


def test_the_old_tversky_choice_says_what_replaces_it():
    with pytest.raises(ValueError, match=r"loss='dice'.*loss_fn"):
        TrainConfig(loss="tversky")


def test_a_loss_of_ones_own_is_trained_with_and_named():
    """``train(loss_fn=)`` replaces the registered loss: the factory gets the class weights and
    the activation each time they change, and the model file names the loss."""
    calls = []

    def weighted_ce(weight, sigmoid):
        calls.append((None if weight is None else weight.tolist(), sigmoid))
        return seg_losses.DiceCELoss(softmax=True, to_onehot_y=True, weight=weight, lambda_dice=0)

    image, _gt, scribbles = blobs((48, 48))
    config = TrainConfig(steps=3, class_weighting="inverse_frequency", **FAST)
    last = run(train(image, scribbles, config, loss_fn=weighted_ce))[-1]
    assert calls and calls[0][1] is False
    w = calls[0][0]
    assert w[0] < w[1]  # background painted more: a lower weight, as the scheme says
    assert set(last.parts) == {"dice", "ce", "edge"}
    assert last.model.train_settings["loss"].startswith("custom: ")
    assert last.model.train_settings["loss"].endswith("weighted_ce -> DiceCELoss")


def test_the_weight_average_is_torchs_ema_with_a_warm_up():
    """The average that previews and the final model use: torch's ``AveragedModel`` with the
    decay ``min(decay, (1 + n) / (10 + n))`` after n averages (0.18, 0.25, .. up to 0.9)."""
    from torch.optim.swa_utils import AveragedModel

    net = torch.nn.Linear(3, 2)
    average = AveragedModel(net, multi_avg_fn=ema_with_warmup(0.9))
    average.update_parameters(net)  # the first call copies
    expected = [p.detach().clone() for p in net.parameters()]
    for n in range(1, 30):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        average.update_parameters(net)
        d = min(0.9, (1 + n) / (10 + n))
        live = [p.detach() for p in net.parameters()]
        expected = [d * e + (1 - d) * p for e, p in zip(expected, live, strict=True)]
    for a, e in zip(average.module.parameters(), expected, strict=True):
        torch.testing.assert_close(a.detach(), e)


def test_edge_regulariser_is_on_by_default_and_reported():
    image, _gt, scribbles = blobs()
    assert TrainConfig().lambda_edge is None and TrainConfig().edge_sigma is None
    reports = run(train(image, scribbles, TrainConfig(steps=40, **FAST)))
    last = reports[-1]
    assert set(last.parts) == {"dice", "ce", "edge"}
    assert last.model.train_settings["lambda_edge_used"] == DEFAULT_LAMBDA_EDGE == 2.0
    assert all(r.parts["edge"] >= 0 for r in reports)
    assert last.prediction is not None
    # The automatic sigma follows the image's noise: blobs() has noise 20 on a range of ~60+.
    used = last.model.train_settings["edge_sigma_used"]
    norm = last.model.normalization
    noise = 20.0 / (norm.high[0] - norm.low[0])
    assert used == pytest.approx(EDGE_NOISE_FACTOR * noise, rel=0.25)
    fixed = run(train(image, scribbles, TrainConfig(steps=2, edge_sigma=0.2, **FAST)))[-1]
    assert fixed.model.train_settings["edge_sigma_used"] == 0.2
    off = run(train(image, scribbles, TrainConfig(steps=2, lambda_edge=0.0, **FAST)))[-1]
    assert set(off.parts) == {"dice", "ce"}
    # stacks leave it off unless asked for
    stack = np.stack([image] * 3)
    s3 = np.zeros(stack.shape, np.uint8)
    s3[1] = scribbles
    auto = run(train(stack, s3, TrainConfig(steps=2, **FAST)))[-1]
    assert set(auto.parts) == {"dice", "ce"}
    assert auto.model.train_settings["lambda_edge_used"] == 0.0
    assert auto.model.train_settings["edge_sigma_used"] is None
    on = run(train(stack, s3, TrainConfig(steps=2, lambda_edge=1.0, **FAST)))[-1]
    assert set(on.parts) == {"dice", "ce", "edge"}
    with pytest.raises(ValueError, match="lambda_edge"):
        TrainConfig(lambda_edge=-1.0)
    with pytest.raises(ValueError, match="edge_sigma"):
        TrainConfig(edge_sigma=0.0)


def test_noise_level_measures_the_noise_and_ignores_edges():
    rng = np.random.default_rng(0)
    steps = np.zeros((4, 1, 64, 64))
    steps[..., 32:] = 1.0  # a strong edge in every row must not count as noise
    for sd in (0.01, 0.05, 0.2):
        x = steps + rng.normal(0.0, sd, steps.shape)
        assert noise_level(x) == pytest.approx(sd, rel=0.1)
    assert noise_level(steps) == pytest.approx(1e-3)  # floored; noise-free images
    image, _gt, scribbles = blobs()
    clean = ((image > 0) * 100).astype(np.uint16)  # flat: no noise at all
    clean[:, 48:] = 200
    model = run(train(clean, scribbles, TrainConfig(steps=1, **FAST)))[-1].model
    assert model.train_settings["edge_sigma_used"] == EDGE_SIGMA_MIN


@pytest.mark.parametrize(
    ("image", "value"),
    [
        (np.full((48, 48), 7.5, np.float32), "7.5"),
        (np.zeros((48, 48), np.uint8), "0"),
        # every channel saturated; a picture of one colour
        (np.full((48, 48, 3), 65535, np.uint16), "(65535, 65535, 65535)"),
        (np.broadcast_to(np.uint8([10, 120, 250]), (48, 48, 3)).copy(), "(10, 120, 250)"),
    ],
)
def test_a_constant_image_is_refused_before_training(image, value):
    """It trained, saved a model of one class and advised training longer."""
    _, _, scribbles = blobs((48, 48))
    with pytest.raises(ValueError, match=re.escape(f"constant (every pixel {value})")):
        train(image, scribbles, TrainConfig(steps=2, **FAST))


def test_one_constant_channel_is_trained_on_unless_it_is_all_the_model_sees():
    image, _, scribbles = blobs((48, 48))
    two = np.stack([image, np.zeros_like(image)], axis=-1)
    reports = run(train(two, scribbles, TrainConfig(steps=2, final_prediction=False, **FAST)))
    assert reports[-1].model.in_channels == 2
    empty = TrainConfig(steps=2, model=ModelConfig(width=4, channels=(1,)), **FAST)
    words = "constant (every pixel 0 in channel 1, the one the model sees)"
    with pytest.raises(ValueError, match=re.escape(words)):
        train(two, scribbles, empty)
    # a channel the image lacks is said as such (the constant check raised IndexError)
    absent = TrainConfig(steps=2, model=ModelConfig(width=4, channels=(2,)), **FAST)
    with pytest.raises(ValueError, match="channel 2 is not in the image"):
        train(two, scribbles, absent)
    with pytest.raises(ValueError, match="channel 2 is not in the image"):
        train(image, scribbles, absent)
