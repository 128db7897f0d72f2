"""Device selection: ``auto`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import os

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return the torch device for a device name.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` (CUDA if available, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
        or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        For an unknown name or a device that is not available on this machine.
    """
    name = str(device) if isinstance(device, torch.device) else str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":", 1)[0]
    if kind not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available on this machine")
    if kind == "mps" and not _mps_available():
        raise ValueError("device 'mps' requested but Apple MPS is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from None


def default_num_threads() -> int:
    """Torch threads for CPU training: all cores but one, so the GUI thread keeps a core."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (n or 1) - 1)


def describe_device(device: str | torch.device, num_threads: int | None = None) -> str:
    """Return a short human description, e.g. ``"CUDA: NVIDIA H100"`` or ``"CPU, 2 threads"``.

    Parameters
    ----------
    device : str or torch.device
        The device (``"auto"`` is resolved first).
    num_threads : int, optional
        Torch threads used on the CPU (default: ``torch.get_num_threads()``).
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"CUDA: {torch.cuda.get_device_name(index)}"
    if dev.type == "mps":
        return "Apple MPS"
    n = torch.get_num_threads() if num_threads is None else num_threads
    return f"CPU, {n} thread{'s' if n != 1 else ''}"


def release_memory(device: torch.device) -> None:
    """Return cached accelerator memory to the driver (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
