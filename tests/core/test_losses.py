"""The losses agree with MONAI (the reference) when every pixel is labeled.

Two kinds of checks: expected values from MONAI's own test suite, and parametrised comparisons
against ``monai.losses`` itself (a test-only dependency) on random inputs, values and gradients.
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest
import torch

from napari_seglab.core import losses as L

monai_losses = pytest.importorskip("monai.losses")


def _t(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


# Inputs shared by many of MONAI's cases: (2, 2, 3) logits and (2, 1, 3) labels.
_X23 = [[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]
_Y23 = [[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]]
_XB = [[[[1.0, -1.0], [-1.0, 1.0]]]]
_YB = [[[[1.0, 0.0], [1.0, 1.0]]]]
_X2B = [[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]]
_Y2B = [[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]]
_P2B = [[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]]
_XHARD = [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]
_YHARD = [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]]
_LOGSOFTMAX = lambda x: torch.log_softmax(x, dim=1)  # noqa: E731

# Expected values from MONAI's test suite (Project-MONAI/MONAI, Apache-2.0):
# tests/losses/test_dice_loss.py, test_generalized_dice_loss.py, test_tversky_loss.py,
# test_focal_loss.py and test_dice_ce_loss.py (TEST_CASES; the soft_label=True cases are left
# out because soft_label is not an argument here).
MONAI_CASES = [
    # --- tests/losses/test_dice_loss.py
    ("DiceLoss", {"sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6}, _XB, _YB, 0.307576),
    ("DiceLoss", {"sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4}, _X2B, _Y2B, 0.416657),
    ("DiceLoss", {"smooth_nr": 1e-4, "smooth_dr": 1e-4}, _P2B, _P2B, 0.307773),
    (
        "DiceLoss",
        {"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 0},
        _XHARD,
        _YHARD,
        0.0,
    ),
    (
        "DiceLoss",
        {"to_onehot_y": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X23,
        _Y23,
        0.435050,
    ),
    (
        "DiceLoss",
        {
            "to_onehot_y": True,
            "sigmoid": True,
            "reduction": "none",
            "smooth_nr": 1e-4,
            "smooth_dr": 1e-4,
        },
        _X23,
        _Y23,
        [[[0.296529], [0.415136]], [[0.599976], [0.428559]]],
    ),
    (
        "DiceLoss",
        {"to_onehot_y": True, "softmax": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X23,
        _Y23,
        0.383713,
    ),
    (
        "DiceLoss",
        {
            "to_onehot_y": True,
            "softmax": True,
            "reduction": "sum",
            "smooth_nr": 1e-4,
            "smooth_dr": 1e-4,
        },
        _X23,
        _Y23,
        1.534853,
    ),
    ("DiceLoss", {"sigmoid": True, "squared_pred": True}, _XB, _YB, 0.178337),
    ("DiceLoss", {"sigmoid": True, "jaccard": True}, _XB, _YB, 0.470451),
    (
        "DiceLoss",
        {"other_act": torch.tanh, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X2B,
        _Y2B,
        0.999963,
    ),
    (
        "DiceLoss",
        {"to_onehot_y": True, "other_act": _LOGSOFTMAX, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X23,
        _Y23,
        -8.522593,
    ),
    (
        "DiceLoss",
        {"other_act": torch.tanh, "smooth_nr": 1e-4, "smooth_dr": 1e-4, "batch": True},
        [[[[1.0, -0.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        _Y2B,
        0.774718,
    ),
    (
        "DiceLoss",
        {"other_act": torch.tanh, "smooth_nr": 0, "smooth_dr": 1e-4, "batch": True},
        [[[[1.0, -0.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        _Y2B,
        0.774733,
    ),
    (
        "DiceLoss",
        {"other_act": torch.tanh, "smooth_nr": 0, "smooth_dr": 1e-4, "batch": False},
        [[[[1.0, -0.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]],
        _Y2B,
        0.840058,
    ),
    (
        "DiceLoss",
        {
            "to_onehot_y": True,
            "other_act": _LOGSOFTMAX,
            "smooth_nr": 1e-4,
            "smooth_dr": 1e-4,
            "weight": (0, 1),
        },
        _X23,
        _Y23,
        -8.268515,
    ),
    # --- tests/losses/test_generalized_dice_loss.py
    (
        "GeneralizedDiceLoss",
        {"sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6},
        _XB,
        _YB,
        0.307576,
    ),
    (
        "GeneralizedDiceLoss",
        {"sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X2B,
        _Y2B,
        0.416597,
    ),
    ("GeneralizedDiceLoss", {"smooth_nr": 1e-4, "smooth_dr": 1e-4}, _P2B, _P2B, 0.307748),
    (
        "GeneralizedDiceLoss",
        {"include_background": False, "to_onehot_y": True, "smooth_nr": 0.0, "smooth_dr": 0.0},
        _XHARD,
        _YHARD,
        0.0,
    ),
    (
        "GeneralizedDiceLoss",
        {"to_onehot_y": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X23,
        _Y23,
        0.469964,
    ),
    (
        "GeneralizedDiceLoss",
        {"to_onehot_y": True, "softmax": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X23,
        _Y23,
        0.414507,
    ),
    (
        "GeneralizedDiceLoss",
        {
            "to_onehot_y": True,
            "softmax": True,
            "reduction": "sum",
            "smooth_nr": 1e-4,
            "smooth_dr": 1e-4,
        },
        _X23,
        _Y23,
        0.829015,
    ),
    (
        "GeneralizedDiceLoss",
        {
            "to_onehot_y": True,
            "softmax": True,
            "reduction": "none",
            "smooth_nr": 1e-4,
            "smooth_dr": 1e-4,
        },
        _X23,
        _Y23,
        [[[0.273476]], [[0.555539]]],
    ),
    (
        "GeneralizedDiceLoss",
        {"include_background": False, "to_onehot_y": True, "smooth_nr": 1e-8, "smooth_dr": 1e-8},
        _XHARD,
        [[[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]]],
        0.0,
    ),
    (
        "GeneralizedDiceLoss",
        {"to_onehot_y": True, "softmax": True, "w_type": "simple", "smooth_nr": 0, "smooth_dr": 0},
        [[[0.0, 10.0, 10.0, 10.0], [10.0, 0.0, 0.0, 0.0]]],
        [[[1, 1, 0, 0]]],
        0.250023,
    ),
    (
        "GeneralizedDiceLoss",
        {"other_act": torch.tanh, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X2B,
        _Y2B,
        0.99970,
    ),
    (
        "GeneralizedDiceLoss",
        {"to_onehot_y": True, "other_act": _LOGSOFTMAX, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X23,
        _Y23,
        -0.097833,
    ),
    # --- tests/losses/test_tversky_loss.py
    ("TverskyLoss", {"sigmoid": True, "smooth_nr": 1e-6, "smooth_dr": 1e-6}, _XB, _YB, 0.307576),
    ("TverskyLoss", {"sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4}, _X2B, _Y2B, 0.416657),
    ("TverskyLoss", {"smooth_nr": 1e-4, "smooth_dr": 1e-4}, _P2B, _P2B, 0.307773),
    (
        "TverskyLoss",
        {"include_background": False, "to_onehot_y": True, "smooth_nr": 0, "smooth_dr": 1e-3},
        _XHARD,
        _YHARD,
        0.000999,
    ),
    (
        "TverskyLoss",
        {"to_onehot_y": True, "sigmoid": True, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X23,
        _Y23,
        0.435050,
    ),
    ("TverskyLoss", {"to_onehot_y": True, "sigmoid": True, "batch": True}, _X23, _Y23, 0.422979),
    (
        "TverskyLoss",
        {
            "to_onehot_y": True,
            "sigmoid": True,
            "reduction": "sum",
            "smooth_nr": 1e-4,
            "smooth_dr": 1e-4,
        },
        _X23,
        _Y23,
        1.74013,
    ),
    (
        "TverskyLoss",
        {
            "to_onehot_y": True,
            "softmax": True,
            "reduction": "none",
            "smooth_nr": 1e-4,
            "smooth_dr": 1e-4,
        },
        _X23,
        _Y23,
        [[0.210961, 0.295339], [0.599952, 0.428547]],
    ),
    (
        "TverskyLoss",
        {"sigmoid": True, "alpha": 0.3, "beta": 0.7, "smooth_nr": 1e-6, "smooth_dr": 1e-6},
        _XB,
        _YB,
        0.3589,
    ),
    (
        "TverskyLoss",
        {"sigmoid": True, "alpha": 0.7, "beta": 0.3, "smooth_nr": 1e-6, "smooth_dr": 1e-6},
        _XB,
        _YB,
        0.247366,
    ),
    (
        "TverskyLoss",
        {"to_onehot_y": True, "other_act": _LOGSOFTMAX, "smooth_nr": 1e-4, "smooth_dr": 1e-4},
        _X23,
        _Y23,
        -8.533317,
    ),
    # --- tests/losses/test_focal_loss.py (input (1, 3, 2, 2), labels (1, 1, 2, 2))
    ("FocalLoss", {"to_onehot_y": True}, "focal_x", "focal_y", 0.34959),
    (
        "FocalLoss",
        {"to_onehot_y": True, "include_background": False},
        "focal_x",
        "focal_y",
        0.36498,
    ),
    ("FocalLoss", {"to_onehot_y": True, "alpha": 0.8}, "focal_x", "focal_y", 0.08423),
    (
        "FocalLoss",
        {"to_onehot_y": True, "reduction": "none"},
        "focal_x",
        "focal_y",
        [
            [
                [[0.02266, 0.70187], [0.37741, 0.17329]],
                [[0.70187, 0.02266], [0.37741, 0.17329]],
                [[0.70187, 0.70187], [0.06757, 0.17329]],
            ]
        ],
    ),
    (
        "FocalLoss",
        {"to_onehot_y": True, "weight": (0.5, 0.1, 0.2), "reduction": "none"},
        "focal_x",
        "focal_y",
        [
            [
                [[0.01133, 0.35093], [0.18871, 0.08664]],
                [[0.07019, 0.00227], [0.03774, 0.01733]],
                [[0.14037, 0.14037], [0.01352, 0.03466]],
            ]
        ],
    ),
    ("FocalLoss", {"to_onehot_y": True, "use_softmax": True}, "focal_x", "focal_y", 0.16276),
    (
        "FocalLoss",
        {"to_onehot_y": True, "alpha": 0.8, "use_softmax": True},
        "focal_x",
        "focal_y",
        0.08138,
    ),
    # --- tests/losses/test_dice_ce_loss.py
    ("DiceCELoss", {"to_onehot_y": True}, _XHARD, _YHARD, 0.3133),
    ("DiceCELoss", {}, _XHARD, _XHARD, 0.3133),
    (
        "DiceCELoss",
        {"include_background": False, "to_onehot_y": True, "weight": (1.0, 1.0)},
        [[[100.0, 100.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        _YHARD,
        0.2088,
    ),
    (
        "DiceCELoss",
        {
            "include_background": False,
            "to_onehot_y": True,
            "weight": (1.0, 1.0),
            "lambda_dice": 1.0,
            "lambda_ce": 2.0,
        },
        [[[100.0, 100.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        _YHARD,
        0.4176,
    ),
    (
        "DiceCELoss",
        {"include_background": False, "to_onehot_y": True, "weight": (0.0, 1.0)},
        [[[100.0, 100.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]],
        _YHARD,
        0.3133,
    ),
    (
        "DiceCELoss",
        {"weight": (0.5,), "sigmoid": True},
        [[[0.8, 0.6, 0.0]], [[0.0, 0.0, 0.9]]],
        [[[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]],
        1.445239,
    ),
]

_FOCAL_X = [[[[1.0, 1.0], [0.5, 0.0]], [[1.0, 1.0], [0.5, 0.0]], [[1.0, 1.0], [0.5, 0.0]]]]
_FOCAL_Y = [[[[0, 1], [2, 0]]]]


@pytest.mark.parametrize(("name", "kwargs", "x", "y", "expected"), MONAI_CASES)
def test_monai_expected_values(name, kwargs, x, y, expected):
    if x == "focal_x":
        x, y = _FOCAL_X, _FOCAL_Y
    y_t = _t(y, torch.int64) if name == "FocalLoss" else _t(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = getattr(L, name)(**kwargs)(_t(x), y_t)
    np.testing.assert_allclose(result.detach().numpy(), expected, rtol=1e-4, atol=1e-4)


def test_monai_expected_dice_ce_uint8_onehot():
    # tests/losses/test_dice_ce_loss.py: a uint8 one-hot target
    y = torch.tensor([[[1, 1, 0], [0, 0, 1]], [[1, 0, 1], [0, 1, 0]]], dtype=torch.uint8)
    result = L.DiceCELoss()(_t(_XHARD), y)
    assert float(result) == pytest.approx(0.3133, abs=1e-4)


def test_monai_expected_focal_foreground():
    # tests/losses/test_focal_loss.py::test_foreground
    background = torch.ones(1, 1, 5, 5)
    foreground = torch.zeros(1, 1, 5, 5)
    target = torch.cat((background, foreground), dim=1)
    x = torch.cat((background, foreground), dim=1)
    target[:, 0, 2, 2] = 0
    target[:, 1, 2, 2] = 1
    assert float(L.FocalLoss(include_background=True)(x, target)) == pytest.approx(0.1116, abs=1e-3)
    assert float(L.FocalLoss(include_background=False)(x, target)) == pytest.approx(
        0.1733, abs=1e-3
    )


# ----------------------------------------------------------------------------------------------
# direct comparison with monai.losses on random inputs
# ----------------------------------------------------------------------------------------------

_SPATIAL = {1: (7,), 2: (5, 6), 3: (3, 4, 5)}

COMPARE = [
    ("DiceLoss", {"softmax": True}),
    ("DiceLoss", {"sigmoid": True, "include_background": False}),
    ("DiceLoss", {"softmax": True, "squared_pred": True, "batch": True}),
    ("DiceLoss", {"softmax": True, "jaccard": True, "weight": (0.5, 1.0, 2.0)}),
    ("DiceLoss", {"sigmoid": True, "include_background": False, "weight": (1.0, 3.0)}),
    ("DiceLoss", {"softmax": True, "smooth_nr": 0.0, "smooth_dr": 1e-6}),
    ("DiceLoss", {"softmax": True, "weight": 0.5, "batch": True}),
    ("GeneralizedDiceLoss", {"softmax": True}),
    ("GeneralizedDiceLoss", {"softmax": True, "w_type": "simple", "batch": True}),
    ("GeneralizedDiceLoss", {"sigmoid": True, "w_type": "uniform", "include_background": False}),
    ("TverskyLoss", {"softmax": True, "alpha": 0.3, "beta": 0.7}),
    ("TverskyLoss", {"sigmoid": True, "include_background": False, "batch": True}),
    ("FocalLoss", {}),
    ("FocalLoss", {"use_softmax": True, "gamma": 1.5}),
    ("FocalLoss", {"use_softmax": True, "alpha": 0.25, "weight": (1.0, 2.0, 0.5)}),
    ("FocalLoss", {"alpha": 0.75, "include_background": False}),
    ("FocalLoss", {"use_softmax": True, "alpha": (0.2, 0.3, 0.5), "gamma": 0.0}),
    ("FocalLoss", {"alpha": (0.2, 0.3, 0.5), "weight": 2.0}),
    ("FocalLoss", {"use_softmax": True, "include_background": False, "alpha": 0.25}),
    ("DiceCELoss", {"softmax": True}),
    ("DiceCELoss", {"softmax": True, "weight": (0.5, 1.0, 2.0), "lambda_dice": 0.3}),
    ("DiceCELoss", {"softmax": True, "include_background": False, "weight": (1.0, 2.0, 3.0)}),
    ("DiceCELoss", {"sigmoid": True, "jaccard": True, "lambda_ce": 2.0, "batch": True}),
    ("DiceFocalLoss", {"softmax": True}),
    ("DiceFocalLoss", {"sigmoid": True, "gamma": 1.0, "weight": (1.0, 2.0, 3.0), "alpha": 0.3}),
    ("DiceFocalLoss", {"softmax": True, "include_background": False, "lambda_focal": 0.5}),
]


def _reductions(name):
    return ("mean", "sum") if name == "DiceCELoss" else ("mean", "sum", "none")


CASES = [
    pytest.param(
        name, kw, red, nd, onehot, id=f"{name}-{i}-{red}-{nd}d-{'oh' if onehot else 'lab'}"
    )
    for i, (name, kw) in enumerate(COMPARE)
    for red in _reductions(name)
    for nd, onehot in ((1, True), (2, False), (3, False))
]


def _monai_kwargs(name, kwargs):
    kw = {k: (torch.tensor(v) if k == "weight" else v) for k, v in kwargs.items()}
    return kw


@pytest.mark.parametrize(("name", "kwargs", "reduction", "ndim", "onehot"), CASES)
def test_matches_monai_random(name, kwargs, reduction, ndim, onehot):
    gen = torch.Generator().manual_seed(zlib.crc32(f"{name}{kwargs}{reduction}{ndim}".encode()))
    n_cls = 3
    shape = (2, n_cls, *_SPATIAL[ndim])
    x = (torch.randn(shape, generator=gen) * 2.0).requires_grad_()
    labels = torch.randint(0, n_cls, (2, 1, *_SPATIAL[ndim]), generator=gen)
    if onehot:
        target = torch.nn.functional.one_hot(labels[:, 0], n_cls).movedim(-1, 1).float()
        to_onehot = {}
    else:
        target = labels
        to_onehot = {"to_onehot_y": True}
    ours = getattr(L, name)(reduction=reduction, **to_onehot, **kwargs)
    ref = getattr(monai_losses, name)(
        reduction=reduction, **to_onehot, **_monai_kwargs(name, kwargs)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ours(x, target)
        b = ref(x, target)
    assert a.shape == b.shape
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-5)
    (ga,) = torch.autograd.grad(a.sum(), x)
    (gb,) = torch.autograd.grad(b.sum(), x)
    np.testing.assert_allclose(ga.numpy(), gb.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["DiceLoss", "DiceCELoss", "DiceFocalLoss", "TverskyLoss"])
def test_matches_monai_single_channel_sigmoid(name):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 1, 6, 5, generator=gen)
    y = torch.randint(0, 2, (2, 1, 6, 5), generator=gen).float()
    kw = {"sigmoid": True}
    if name == "DiceCELoss":
        kw["weight"] = torch.tensor([0.7])
    a = getattr(L, name)(**kw)(x, y)
    b = getattr(monai_losses, name)(**kw)(x, y)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-5, atol=1e-6)


def test_matches_monai_soft_targets():
    # MONAI's default (soft_label=False) formulation with probabilities as targets
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 4, 4, generator=gen)
    y = torch.softmax(torch.randn(2, 3, 4, 4, generator=gen), dim=1)
    for name in ("DiceLoss", "TverskyLoss", "FocalLoss", "GeneralizedDiceLoss"):
        kw = {} if name == "FocalLoss" else {"softmax": True}
        a = getattr(L, name)(**kw)(x, y)
        b = getattr(monai_losses, name)(**kw)(x, y)
        np.testing.assert_allclose(float(a), float(b), rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", ["DiceLoss", "TverskyLoss"])
def test_matches_monai_ignore_index(name):
    # MONAI's DiceLoss and TverskyLoss also remove ignored pixels after the activation
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 6, 6, generator=gen)
    y = torch.randint(0, 4, (2, 1, 6, 6), generator=gen)
    y[y == 3] = 255
    kw = {"softmax": True, "to_onehot_y": True, "ignore_index": 255}
    a = getattr(L, name)(**kw)(x, y)
    b = getattr(monai_losses, name)(**kw)(x, y)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-5)


def test_dice_focal_with_softmax_focal_is_the_sum_of_monai_parts():
    # MONAI's DiceFocalLoss always uses a sigmoid focal part; use_softmax=True here equals
    # MONAI's softmax DiceLoss plus its softmax FocalLoss
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 5, 5, generator=gen)
    y = torch.randint(0, 3, (2, 1, 5, 5), generator=gen)
    w = (1.0, 2.0, 0.5)
    got = L.DiceFocalLoss(
        softmax=True, to_onehot_y=True, use_softmax=True, weight=w, lambda_focal=0.7, gamma=1.5
    )(x, y)
    dice = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, weight=torch.tensor(w))(x, y)
    focal = monai_losses.FocalLoss(
        to_onehot_y=True, use_softmax=True, weight=torch.tensor(w), gamma=1.5
    )(x, y)
    np.testing.assert_allclose(float(got), float(dice + 0.7 * focal), rtol=1e-5)


def test_last_parts_are_the_unweighted_parts():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(1, 3, 5, 5, generator=gen)
    y = torch.randint(0, 3, (1, 1, 5, 5), generator=gen)
    loss = L.DiceCELoss(softmax=True, to_onehot_y=True, lambda_dice=0.25, lambda_ce=2.0)
    total = loss(x, y)
    dice = L.DiceLoss(softmax=True, to_onehot_y=True)(x, y)
    ce = torch.nn.functional.cross_entropy(x, y[:, 0])
    assert float(loss.last_parts["dice"]) == pytest.approx(float(dice), rel=1e-6)
    assert float(loss.last_parts["ce"]) == pytest.approx(float(ce), rel=1e-6)
    assert float(total) == pytest.approx(0.25 * float(dice) + 2.0 * float(ce), rel=1e-6)
    dfl = L.DiceFocalLoss(softmax=True, to_onehot_y=True, lambda_focal=3.0)
    total = dfl(x, y)
    assert set(dfl.last_parts) == {"dice", "focal"}
    expected = dfl.last_parts["dice"] + 3.0 * dfl.last_parts["focal"]
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
