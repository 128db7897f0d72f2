"""Defining properties of the masked losses: ignored pixels are as if absent.

Also: no NaN on empty labels or absent classes, finite results for fp16 / bf16 logits, the
sigmoid / two-channel-softmax equivalence, torch's cross-entropy semantics, and clear errors on
bad input.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_seglab.core import losses as L

C = 3
IGNORE = 255

# (name, kwargs) for multi-class softmax models with label targets
LOSSES = [
    ("DiceLoss", {"softmax": True}),
    ("DiceLoss", {"softmax": True, "include_background": False, "weight": (1.0, 2.0)}),
    ("DiceLoss", {"softmax": True, "squared_pred": True, "jaccard": True}),
    ("GeneralizedDiceLoss", {"softmax": True}),
    ("TverskyLoss", {"softmax": True, "alpha": 0.3, "beta": 0.7}),
    ("FocalLoss", {}),
    ("FocalLoss", {"use_softmax": True, "alpha": 0.25, "weight": (0.5, 1.0, 2.0)}),
    ("DiceCELoss", {"softmax": True}),
    ("DiceCELoss", {"softmax": True, "weight": (0.2, 1.0, 3.0), "include_background": False}),
    ("DiceFocalLoss", {"softmax": True, "gamma": 1.0}),
]
LOSS_IDS = [f"{n}-{i}" for i, (n, _) in enumerate(LOSSES)]


def make(name, ignore_index=None, **extra):
    kwargs = dict(dict(LOSSES)[name])
    kwargs.update(extra)
    return getattr(L, name)(to_onehot_y=True, ignore_index=ignore_index, **kwargs)


def _data(seed, batch=1, shape=(6, 7), frac=0.4):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, C, *shape, generator=gen) * 2.0
    y = torch.randint(0, C, (batch, 1, *shape), generator=gen)
    labeled = torch.rand(batch, 1, *shape, generator=gen) < frac
    labeled.view(batch, -1)[:, :3] = True  # every sample has some labeled pixels
    y.view(batch, -1)[:, :3] = torch.arange(3)  # and every class is present
    return x, y, labeled


def _gather(x, y, labeled):
    """Labeled pixels of all samples as one (1, C, N) / (1, 1, N) sample."""
    idx = labeled[:, 0]
    xs = x.movedim(1, -1)[idx].T[None]
    ys = y.movedim(1, -1)[idx].T[None]
    return xs, ys


@pytest.mark.parametrize(("name", "kwargs"), LOSSES, ids=LOSS_IDS)
@pytest.mark.parametrize("how", ["ignore_index", "mask", "both"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_masked_loss_equals_loss_of_labeled_pixels(name, kwargs, how, reduction):
    x, y, labeled = _data(1)
    loss = getattr(L, name)(
        to_onehot_y=True,
        reduction=reduction,
        ignore_index=IGNORE if how != "mask" else None,
        **kwargs,
    )
    y_ign = torch.where(labeled, y, IGNORE) if how != "mask" else y
    mask = labeled if how != "ignore_index" else None
    if how == "both":  # the mask leaves out a few more pixels that ignore_index keeps
        extra = torch.zeros_like(labeled)
        extra.view(-1)[-5:] = True
        mask = ~extra
        labeled = labeled & mask
    got = loss(x, y_ign, mask=mask)
    xs, ys = _gather(x, y, labeled)
    plain = getattr(L, name)(to_onehot_y=True, reduction=reduction, **kwargs)
    np.testing.assert_allclose(float(got), float(plain(xs, ys)), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize(("name", "kwargs"), LOSSES, ids=LOSS_IDS)
def test_masked_batch_equals_concatenated_labeled_pixels(name, kwargs):
    x, y, labeled = _data(2, batch=3)
    kw = dict(kwargs)
    if name != "FocalLoss":
        kw["batch"] = True  # Dice sums over the whole batch: same as one long sample
    got = getattr(L, name)(to_onehot_y=True, **kw)(x, y, mask=labeled)
    xs, ys = _gather(x, y, labeled)
    want = getattr(L, name)(to_onehot_y=True, **kw)(xs, ys)
    np.testing.assert_allclose(float(got), float(want), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["DiceLoss", "GeneralizedDiceLoss", "TverskyLoss"])
def test_masked_per_sample_dice_is_mean_of_samples(name):
    x, y, labeled = _data(3, batch=2)
    loss = getattr(L, name)(softmax=True, to_onehot_y=True)
    got = loss(x, y, mask=labeled)
    per = [loss(*_gather(x[i : i + 1], y[i : i + 1], labeled[i : i + 1])) for i in range(2)]
    np.testing.assert_allclose(float(got), float(sum(per) / 2), rtol=2e-6)


@pytest.mark.parametrize(("name", "kwargs"), LOSSES, ids=LOSS_IDS)
def test_ignored_logits_change_neither_loss_nor_gradient(name, kwargs):
    x, y, labeled = _data(4, batch=2)
    y_ign = torch.where(labeled, y, IGNORE)
    x2 = x.clone()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(9)) * 30.0
    x2 = torch.where(labeled, x, noise)
    loss = getattr(L, name)(to_onehot_y=True, ignore_index=IGNORE, **kwargs)
    grads, values = [], []
    for xi in (x, x2):
        xi = xi.clone().requires_grad_()
        value = loss(xi, y_ign)
        (g,) = torch.autograd.grad(value, xi)
        values.append(value.detach())
        grads.append(g)
    assert torch.equal(values[0], values[1])
    assert torch.equal(grads[0], grads[1])
    ignored = (~labeled).expand_as(grads[0])
    assert torch.count_nonzero(grads[0][ignored]) == 0
    assert torch.count_nonzero(grads[0][~ignored]) > 0


NOTHING_CASES = [
    pytest.param(name, kw, red, id=f"{i}-{red}")
    for (name, kw), i in zip(LOSSES, LOSS_IDS, strict=True)
    for red in ("mean", "sum", "none")
    if not (name == "DiceCELoss" and red == "none")  # no "none" in DiceCELoss (as in MONAI)
]


@pytest.mark.parametrize(("name", "kwargs", "reduction"), NOTHING_CASES)
def test_nothing_labeled_gives_zero_with_graph(name, kwargs, reduction):
    x, y, _ = _data(5, batch=2)
    x.requires_grad_()
    loss = getattr(L, name)(to_onehot_y=True, reduction=reduction, ignore_index=-1, **kwargs)
    for value in (
        loss(x, y, mask=torch.zeros(2, 1, 6, 7, dtype=torch.bool)),
        loss(x, torch.full_like(y, -1)),
    ):
        assert value.requires_grad
        assert torch.isfinite(value).all()
        assert torch.count_nonzero(value.detach()) == 0
        (g,) = torch.autograd.grad(value.sum(), x)
        assert torch.count_nonzero(g) == 0


def test_nothing_labeled_single_channel():
    z = torch.randn(1, 1, 4, 4, requires_grad=True)
    t = torch.zeros(1, 1, 4, 4)
    none = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    for loss in (L.DiceCELoss(sigmoid=True), L.DiceCELoss(sigmoid=True, weight=(1.0, 3.0))):
        value = loss(z, t, mask=none)
        assert float(value.detach()) == 0.0
        value.backward()


@pytest.mark.parametrize(("name", "kwargs"), LOSSES, ids=LOSS_IDS)
@pytest.mark.parametrize("batch", [False, True])
def test_absent_class_is_finite(name, kwargs, batch):
    x, _, labeled = _data(6, batch=2)
    y = torch.randint(0, 2, (2, 1, 6, 7), generator=torch.Generator().manual_seed(1))  # no class 2
    x.requires_grad_()
    kw = dict(kwargs)
    if name != "FocalLoss":
        kw["batch"] = batch
    value = getattr(L, name)(to_onehot_y=True, **kw)(x, y, mask=labeled)
    (g,) = torch.autograd.grad(value, x)
    assert torch.isfinite(value) and torch.isfinite(g).all()


def test_absent_class_dice_term_penalises_false_positives():
    """Documented choice: an absent class keeps its Dice term, 1 - nr / (sum(p) + dr)."""
    x, _, labeled = _data(7)
    y = torch.zeros(1, 1, 6, 7, dtype=torch.int64)  # only class 0 labeled
    per_class = L.DiceLoss(softmax=True, to_onehot_y=True, reduction="none")(x, y, mask=labeled)
    p = torch.softmax(x, dim=1)[:, 2][labeled[:, 0]]
    expected = 1.0 - 1e-5 / (float(p.sum()) + 1e-5)
    assert float(per_class[0, 2]) == pytest.approx(expected, rel=1e-6)
    assert expected > 0.99


def test_sample_without_labels_is_dropped_from_the_mean():
    x, y, labeled = _data(8, batch=2)
    labeled[1] = False
    for loss in (
        L.DiceLoss(softmax=True, to_onehot_y=True),
        L.GeneralizedDiceLoss(softmax=True, to_onehot_y=True),
    ):
        both = loss(x, y, mask=labeled)
        first = loss(x[:1], y[:1], mask=labeled[:1])
        assert float(both) == pytest.approx(float(first), rel=1e-6)
        per = L.DiceLoss(softmax=True, to_onehot_y=True, reduction="none")(x, y, mask=labeled)
        assert torch.count_nonzero(per[1]) == 0


def test_zero_denominators_do_not_give_nan():
    # probabilities as input, no smoothing: a class absent from both prediction and target
    p = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]], requires_grad=True)
    y = torch.tensor([[[0, 0, 1]]])
    for loss in (
        L.DiceLoss(to_onehot_y=True, smooth_nr=0.0, smooth_dr=0.0),
        L.TverskyLoss(to_onehot_y=True, smooth_nr=0.0, smooth_dr=0.0),
        L.GeneralizedDiceLoss(to_onehot_y=True, smooth_nr=0.0, smooth_dr=0.0),
    ):
        value = loss(p, y)
        (g,) = torch.autograd.grad(value, p)
        assert float(value.detach()) == pytest.approx(0.0, abs=1e-7)
        assert torch.isfinite(g).all()


# ----------------------------------------------------------------------------------------------
# precision
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_1024_is_finite_and_summed_in_float32(dtype):
    gen = torch.Generator().manual_seed(10)
    x = (torch.randn(1, 2, 1024, 1024, generator=gen) * 8.0).to(dtype).requires_grad_()
    y = torch.randint(0, 2, (1, 1, 1024, 1024), generator=gen)
    labeled = torch.zeros(1, 1, 1024, 1024, dtype=torch.bool)
    labeled[..., ::3, :] = True
    for loss in (
        L.DiceCELoss(softmax=True, to_onehot_y=True, weight=(0.3, 2.0)),
        L.DiceFocalLoss(softmax=True, to_onehot_y=True, use_softmax=True),
    ):
        value = loss(x, y, mask=labeled)
        assert value.dtype == torch.float32
        assert torch.isfinite(value)
        (g,) = torch.autograd.grad(value, x)
        assert g.dtype == dtype and torch.isfinite(g).all()
        ref = loss(x.detach().float(), y, mask=labeled)
        assert float(value.detach()) == pytest.approx(float(ref), rel=1e-6)


def test_autocast_keeps_float32():
    x, y, labeled = _data(11)
    loss = L.DiceCELoss(softmax=True, to_onehot_y=True)
    ref = loss(x, y, mask=labeled)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(x, y, mask=labeled)
    assert value.dtype == torch.float32
    assert float(value) == pytest.approx(float(ref), rel=1e-6)


# ----------------------------------------------------------------------------------------------
# binary: one sigmoid channel == two softmax channels without background
# ----------------------------------------------------------------------------------------------


def _binary(seed):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 1, 5, 6, generator=gen) * 3.0
    fg = torch.randint(0, 2, (2, 1, 5, 6), generator=gen)
    labeled = torch.rand(2, 1, 5, 6, generator=gen) < 0.5
    labeled.view(2, -1)[:, :2] = True
    two = torch.cat([torch.zeros_like(z), z], dim=1)
    return z, fg, labeled, two


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("batch", [False, True])
def test_sigmoid_equals_softmax_without_background_dice(masked, batch):
    z, fg, labeled, two = _binary(12)
    mask = labeled if masked else None
    a = L.DiceLoss(sigmoid=True, batch=batch)(z, fg.float(), mask=mask)
    b = L.DiceLoss(softmax=True, to_onehot_y=True, include_background=False, batch=batch)(
        two, fg, mask=mask
    )
    np.testing.assert_allclose(float(a), float(b), rtol=1e-6)


@pytest.mark.parametrize("weight", [None, (0.4, 2.5)])
@pytest.mark.parametrize("masked", [False, True])
def test_sigmoid_equals_softmax_without_background_ce(weight, masked):
    z, fg, labeled, two = _binary(13)
    mask = labeled if masked else None
    kw = {"lambda_dice": 0.0, "weight": weight}
    a = L.DiceCELoss(sigmoid=True, **kw)(z, fg.float(), mask=mask)
    b = L.DiceCELoss(softmax=True, to_onehot_y=True, **kw)(two, fg, mask=mask)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-6)
    # and the combined loss, with the ignore index in the single-channel target
    t_ign = torch.where(labeled, fg, -1)
    a = L.DiceCELoss(sigmoid=True, ignore_index=-1, weight=weight)(z, t_ign)
    b = L.DiceCELoss(
        softmax=True, to_onehot_y=True, include_background=False, ignore_index=-1, weight=weight
    )(two, t_ign)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-6)


def test_sigmoid_ce_equals_bce_with_logits():
    z, fg, labeled, _ = _binary(14)
    got = L.DiceCELoss(sigmoid=True, lambda_dice=0.0, weight=(3.0,))(z, fg.float(), mask=labeled)
    want = F.binary_cross_entropy_with_logits(
        z[labeled], fg.float()[labeled], pos_weight=torch.tensor(3.0)
    )
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# cross-entropy semantics and one-hot targets
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("weight", [None, (0.2, 1.0, 5.0)])
def test_ce_is_torch_cross_entropy_with_ignore_index(reduction, weight):
    x, y, labeled = _data(15, batch=2)
    y_ign = torch.where(labeled, y, -100)
    w = None if weight is None else torch.tensor(weight)
    got = L.DiceCELoss(
        softmax=True,
        to_onehot_y=True,
        lambda_dice=0.0,
        weight=w,
        reduction=reduction,
        ignore_index=-100,
    )(x, y_ign)
    want = F.cross_entropy(x, y_ign[:, 0], weight=w, ignore_index=-100, reduction=reduction)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)


@pytest.mark.parametrize(("name", "kwargs"), LOSSES, ids=LOSS_IDS)
def test_onehot_target_with_sentinel_equals_labels_with_ignore_index(name, kwargs):
    x, y, labeled = _data(16)
    onehot = F.one_hot(y[:, 0], C).movedim(-1, 1).float() * labeled
    if name == "DiceCELoss" and "weight" in kwargs:
        # torch averages a weighted CE over pixels for probability targets, over sum(w[y]) for
        # labels: compare the one-hot case with torch itself on the labeled pixels
        w = torch.tensor(kwargs["weight"])
        ce = L.DiceCELoss(weight=w, lambda_dice=0.0, ignore_index=-1)(x, onehot)
        xs, ys = _gather(x, onehot, labeled)
        np.testing.assert_allclose(float(ce), float(F.cross_entropy(xs, ys, weight=w)), rtol=1e-6)
        return
    a = getattr(L, name)(ignore_index=-1, **kwargs)(x, onehot)
    b = getattr(L, name)(to_onehot_y=True, ignore_index=-1, **kwargs)(
        x, torch.where(labeled, y, -1)
    )
    np.testing.assert_allclose(float(a), float(b), rtol=2e-6)


def test_onehot_ignore_index_as_channel():
    x, y, _ = _data(17)
    onehot = F.one_hot(y[:, 0], C).movedim(-1, 1).float()
    a = L.DiceLoss(softmax=True, ignore_index=2)(x, onehot)
    b = L.DiceLoss(softmax=True, to_onehot_y=True, ignore_index=2)(x, y)
    c = L.DiceLoss(softmax=True, to_onehot_y=True)(x, y, mask=y != 2)
    assert float(a) == pytest.approx(float(b), rel=1e-6)
    assert float(a) == pytest.approx(float(c), rel=1e-6)


@pytest.mark.parametrize("ndim", [1, 3])
def test_masking_in_1d_and_3d(ndim):
    shape = (9,) if ndim == 1 else (3, 4, 3)
    x, y, labeled = _data(18, shape=shape)
    for name in ("DiceCELoss", "DiceFocalLoss", "TverskyLoss"):
        got = make(name, ignore_index=IGNORE)(x, torch.where(labeled, y, IGNORE))
        want = make(name)(*_gather(x, y, labeled))
        np.testing.assert_allclose(float(got), float(want), rtol=2e-6, err_msg=name)


def test_mask_broadcasts_over_batch_and_accepts_numbers():
    x, y, labeled = _data(19, batch=2)
    shared = labeled[:1]
    loss = L.DiceCELoss(softmax=True, to_onehot_y=True)
    a = loss(x, y, mask=shared)
    b = loss(x, y, mask=shared.expand(2, -1, -1, -1).float())
    c = loss(x, y, mask=shared.numpy())
    assert float(a) == pytest.approx(float(b), rel=1e-7)
    assert float(a) == pytest.approx(float(c), rel=1e-7)


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------

_X = torch.zeros(2, 3, 4, 5)
_Y = torch.zeros(2, 1, 4, 5, dtype=torch.int64)

BAD_INPUT = [
    (
        "spatial mismatch",
        _X,
        torch.zeros(2, 1, 4, 6, dtype=torch.int64),
        None,
        r"\(2, 1, 4, 6\).*\(2, 3, 4, 5\)",
    ),
    ("batch mismatch", _X, torch.zeros(1, 1, 4, 5, dtype=torch.int64), None, r"\(1, 1, 4, 5\)"),
    ("channels", _X, torch.zeros(2, 2, 4, 5), None, r"2 channels"),
    ("target dims", _X, torch.zeros(2, 4, 5, dtype=torch.int64), None, r"\(2, 4, 5\)"),
    ("input dims 2", torch.zeros(2, 3), torch.zeros(2, 1), None, r"1 to 3 spatial dims.*\(2, 3\)"),
    (
        "input dims 6",
        torch.zeros(1, 3, 2, 2, 2, 2),
        torch.zeros(1, 1, 2, 2, 2, 2),
        None,
        r"spatial dims",
    ),
    ("label too big", _X, torch.full((2, 1, 4, 5), 3), None, r"\[0, 3\).*found \[3\]"),
    ("negative label", _X, torch.full((2, 1, 4, 5), -1), None, r"found \[-1\]"),
    ("fractional label", _X, torch.full((2, 1, 4, 5), 0.5), None, r"integers.*0\.5"),
    ("nan logits", torch.full((2, 3, 4, 5), float("nan")), _Y, None, r"120 NaN"),
    ("inf logits", torch.full((2, 3, 4, 5), float("inf")), _Y, None, r"120 infinite"),
    ("int logits", torch.zeros(2, 3, 4, 5, dtype=torch.int64), _Y, None, r"floating point"),
    ("mask shape", _X, _Y, torch.ones(2, 3, 4, 5, dtype=torch.bool), r"mask shape \(2, 3, 4, 5\)"),
    (
        "mask spatial",
        _X,
        _Y,
        torch.ones(2, 1, 5, 4, dtype=torch.bool),
        r"mask shape \(2, 1, 5, 4\)",
    ),
]


@pytest.mark.parametrize(
    "name",
    ["DiceLoss", "GeneralizedDiceLoss", "TverskyLoss", "FocalLoss", "DiceCELoss", "DiceFocalLoss"],
)
@pytest.mark.parametrize(
    ("what", "x", "y", "mask", "match"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT]
)
def test_bad_input_raises_value_error(name, what, x, y, mask, match):
    loss = getattr(L, name)(to_onehot_y=True)
    with pytest.raises(ValueError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss(x, y, mask=mask)


def test_labels_are_checked_only_where_counted():
    loss = L.DiceCELoss(softmax=True, to_onehot_y=True, ignore_index=255)
    y = _Y.clone()
    y[0, 0, 0, 0] = 255  # the ignore index is fine
    loss(_X, y)
    y[0, 0, 0, 1] = 7  # a stray label under the mask is fine, not elsewhere
    mask = torch.ones(2, 1, 4, 5, dtype=torch.bool)
    mask[0, 0, 0, 1] = False
    loss(_X, y, mask=mask)
    with pytest.raises(ValueError, match=r"ignore_index=255.*found \[7\]"):
        loss(_X, y)


def test_bad_targets_for_single_channel_and_onehot():
    with pytest.raises(ValueError, match=r"\[0, 1\].*found \[2\]"):
        L.DiceLoss(sigmoid=True)(torch.zeros(1, 1, 3), torch.full((1, 1, 3), 2.0))
    with pytest.raises(ValueError, match=r"one-hot.*\[0, 1\]"):
        L.DiceLoss(softmax=True)(torch.zeros(1, 2, 3), torch.full((1, 2, 3), 3.0))
    with pytest.raises(ValueError, match=r"to_onehot_y=True"):
        L.DiceLoss(softmax=True)(torch.zeros(1, 2, 3), torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match=r"to_onehot_y=True expects"):
        L.DiceLoss(softmax=True, to_onehot_y=True)(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"NaN"):
        L.DiceLoss(sigmoid=True)(torch.zeros(1, 1, 3), torch.full((1, 1, 3), float("nan")))


def test_bad_arguments():
    with pytest.raises(ValueError, match="reduction"):
        L.DiceLoss(reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        L.DiceCELoss(reduction="none")
    with pytest.raises(ValueError, match="at most one"):
        L.DiceLoss(sigmoid=True, softmax=True)
    with pytest.raises(ValueError, match="w_type"):
        L.GeneralizedDiceLoss(w_type="cubic")
    with pytest.raises(ValueError, match="lambda_dice"):
        L.DiceFocalLoss(lambda_dice=-1.0)
    with pytest.raises(ValueError, match="lambda_ce"):
        L.DiceCELoss(lambda_ce=-0.5)
    with pytest.raises(ValueError, match="weight values"):
        L.DiceLoss(weight=(1.0, -1.0))
    with pytest.raises(ValueError, match="ignore_index"):
        L.DiceLoss(ignore_index=1.5)
    with pytest.raises(ValueError, match=r"weight has 2 values.*3 classes"):
        L.DiceLoss(softmax=True, to_onehot_y=True, weight=(1.0, 2.0))(_X, _Y)
    with pytest.raises(ValueError, match=r"weight must have 3 values"):
        L.DiceCELoss(softmax=True, to_onehot_y=True, weight=(1.0, 2.0, 3.0, 4.0), lambda_dice=0)(
            _X, _Y
        )
    with pytest.raises(ValueError, match=r"alpha has 2 values"):
        L.FocalLoss(to_onehot_y=True, alpha=(0.5, 0.5))(_X, _Y)
    with pytest.raises(ValueError, match=r"single-channel input"):
        L.DiceCELoss(sigmoid=True, weight=(1.0, 2.0, 3.0))(
            torch.zeros(1, 1, 3), torch.zeros(1, 1, 3)
        )


@pytest.mark.parametrize(
    ("name", "kwargs"), [*LOSSES, ("FocalLoss", {"use_softmax": True, "gamma": 0.5})]
)
def test_saturated_logits_give_finite_loss_and_gradient(name, kwargs):
    x, y, labeled = _data(20)
    x = (torch.sign(x) * 100.0).requires_grad_()  # probabilities saturate at exactly 0 and 1
    value = getattr(L, name)(to_onehot_y=True, **kwargs)(x, y, mask=labeled)
    (g,) = torch.autograd.grad(value, x)
    assert torch.isfinite(value) and torch.isfinite(g).all()
