"""The optimiser of a training and the average of its weights: Adam as ``TrainConfig`` sets
it (resuming an earlier training's state when asked), the state a model keeps for the next
training, the exponential moving average that previews and the final model use, and the
slower one that teaches a consistency term.

Why the options exist, why ``resume_optimizer`` is on by default and the others are off:
``benchmarks/results/probe_optimizer.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

if TYPE_CHECKING:
    from napari_seglab.core.config import TrainConfig


def build_optimizer(
    net: torch.nn.Module, config: TrainConfig, lr: float, state: dict[str, Any] | None
) -> torch.optim.Adam:
    """``torch.optim.Adam`` over ``net``'s weights with ``lr`` and ``config``'s weight decay and
    AMSGrad; with ``config.resume_optimizer``, the earlier training's ``state`` (a
    ``state_dict()``, see :func:`kept_state`) is loaded when it is of the same kind, its rate
    and weight decay replaced by this training's."""
    optimizer = torch.optim.Adam(
        net.parameters(), lr=lr, weight_decay=config.weight_decay, amsgrad=config.amsgrad
    )
    if config.resume_optimizer and state is not None:
        groups = state.get("param_groups") or [{}]
        if bool(groups[0].get("amsgrad", False)) == bool(config.amsgrad):
            optimizer.load_state_dict(state)  # moves the state to the weights' device
            for group in optimizer.param_groups:
                group.update(lr=lr, weight_decay=config.weight_decay)
    return optimizer


def kept_state(optimizer: torch.optim.Optimizer, config: TrainConfig) -> dict[str, Any] | None:
    """What a model keeps of its training's optimiser: with ``config.resume_optimizer`` a copy
    of its ``state_dict()`` with every tensor on the CPU (two floats per weight for Adam), else
    None."""
    return _to_cpu(optimizer.state_dict()) if config.resume_optimizer else None


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


def ema_with_warmup(decay: float) -> Callable[[list, list, torch.Tensor], None]:
    """``multi_avg_fn`` of :class:`torch.optim.swa_utils.AveragedModel`: torch's exponential
    moving average (``get_ema_multi_avg_fn``) with the decay warming up as
    ``min(decay, (1 + n) / (10 + n))`` after ``n`` averages, so that the first steps, far from
    where training goes, are not held on to."""

    def update(averaged: list, current: list, num_averaged: torch.Tensor) -> None:
        n = int(num_averaged)
        get_ema_multi_avg_fn(min(decay, (1 + n) / (10 + n)))(averaged, current, num_averaged)

    return update


def build_teacher(net: torch.nn.Module, decay: float, continued: bool) -> AveragedModel:
    """The mean teacher of ``TrainConfig.consistency``: an exponential moving average of
    ``net``'s weights with ``decay``, starting from its current weights, warming up as
    :func:`ema_with_warmup` in a first training and at the full decay from the start when
    the training continues a trained model (whose weights are the anchor then)."""
    average = get_ema_multi_avg_fn(decay) if continued else ema_with_warmup(decay)
    teacher = AveragedModel(net, multi_avg_fn=average)
    teacher.update_parameters(net)
    teacher.requires_grad_(False)
    return teacher


@torch.no_grad()
def copy_parameters(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """Copy ``source``'s weights into ``target`` (same architecture)."""
    for s, t in zip(source.parameters(), target.parameters(), strict=True):
        t.copy_(s)
