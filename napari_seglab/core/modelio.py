"""Safe model files: safetensors weights plus a JSON header.

Loading never unpickles anything, so a file can not run code. The header (safetensors metadata
key ``napari_seglab``) holds the format version, classes, channels, normalisation, architecture,
training settings and the package version. A model trained with
``TrainConfig.resume_optimizer`` also carries its Adam state (tensors under
``optimizer/<param index>/<name>``, the parameter groups in the header), so that a training
continued from the file, in the widget or with ``seglab train --init``, resumes it as one
continued in memory does (format version 2; version 1 files, without it, are read as before).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from napari_seglab.core.data import Normalization
from napari_seglab.core.io import write_atomic
from napari_seglab.core.model import (
    ModelConfig,
    SegModel,
    default_class_names,
    output_channels,
)

FORMAT = "napari-seglab-model"
FORMAT_VERSION = 2
#: Tensor names of the optimiser state in a model file start with this.
OPTIMIZER_PREFIX = "optimizer/"
HEADER_KEY = "napari_seglab"
#: Names a model file may have (the format is safetensors; ``.seglab`` by convention).
SUFFIXES = (".seglab", ".safetensors")
_MAX_HEADER = 100 * 1024 * 1024


class ModelFileError(ValueError):
    """A file that is not a (readable, compatible) napari-seglab model."""


def model_header(model: SegModel) -> dict[str, Any]:
    """The JSON-serialisable header saved with a model."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": model.version,
        "num_classes": model.num_classes,
        "class_names": list(model.class_names),
        "in_channels": model.in_channels,
        "normalization": model.normalization.to_dict(),
        "model_config": model.config.to_dict(),
        "train_settings": model.train_settings,
    }


def check_model_name(path: str | Path) -> Path:
    """Return ``path`` as a Path if it is named like a model file (:data:`SUFFIXES`).

    Raises
    ------
    ValueError
        ``path`` is not named ``.seglab`` or ``.safetensors``: a model is never written under
        an image's or any other file's name.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path.name}: name a model file .seglab (or .safetensors)")
    return path


def save_model(model: SegModel, path: str | Path, *, optimizer: bool = True) -> Path:
    """Write ``model`` to ``path`` atomically (a temporary file renamed into place), with its
    optimiser state (``SegModel.optimizer_state``, two tensors per weight for Adam) unless
    ``optimizer`` is False or it has none: a model for prediction only needs no state.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    ValueError
        ``path`` is not named ``.seglab`` or ``.safetensors`` (:data:`SUFFIXES`): a model is
        never written under an image's or any other file's name; nothing is written.
    OSError
        The file could not be written (a full disk, no permission); ``path`` is left as it was.
    """
    path = check_model_name(path)
    header = model_header(model)
    tensors = {
        k: v.detach().to("cpu").contiguous().clone() for k, v in model.net.state_dict().items()
    }
    if optimizer and model.optimizer_state is not None:
        kept, header["optimizer"] = _optimizer_tensors(model.optimizer_state)
        tensors.update(kept)
    else:
        header["format_version"] = 1  # readable by every version
    header = json.dumps(header, default=str)

    def write(tmp: str) -> None:
        try:
            save_file(tensors, tmp, metadata={HEADER_KEY: header})
        except Exception as exc:  # noqa: BLE001 (safetensors' own error type, also a full disk)
            raise OSError(str(exc)) from None

    write_atomic(path, write)
    return path


def _optimizer_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's ``state_dict()`` as file tensors and a JSON-able header entry."""
    tensors, scalars = {}, {}
    for index, values in state.get("state", {}).items():
        for name, value in values.items():
            key = f"{OPTIMIZER_PREFIX}{int(index)}/{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars[key] = value
    return tensors, {"param_groups": state.get("param_groups", []), "scalars": scalars}


def _optimizer_state(
    meta: Any, tensors: dict[str, torch.Tensor], model: SegModel
) -> dict[str, Any]:
    """The ``state_dict()`` :func:`_optimizer_tensors` wrote, checked against ``model``'s
    parameters (ValueError when it does not fit them)."""
    if not isinstance(meta, dict) or not isinstance(meta.get("param_groups"), list):
        raise ValueError("no parameter groups")
    shapes = [tuple(p.shape) for p in model.net.parameters()]
    groups = []
    for group in meta["param_groups"]:
        group = {k: tuple(v) if k == "betas" else v for k, v in dict(group).items()}
        params = [int(i) for i in group.get("params", [])]
        if any(not 0 <= i < len(shapes) for i in params):
            raise ValueError("a parameter index out of range")
        groups.append({**group, "params": params})
    if sorted(i for g in groups for i in g["params"]) != list(range(len(shapes))):
        raise ValueError(f"the groups do not hold the network's {len(shapes)} parameters")
    entries = {**tensors, **dict(meta.get("scalars") or {})}
    state: dict[int, dict[str, Any]] = {}
    for key, value in entries.items():
        index, _, name = key[len(OPTIMIZER_PREFIX) :].partition("/")
        i = int(index)
        if not 0 <= i < len(shapes) or not name:
            raise ValueError(f"{key}: no such parameter")
        if isinstance(value, torch.Tensor) and value.dim() > 0 and tuple(value.shape) != shapes[i]:
            raise ValueError(f"{key} has shape {tuple(value.shape)}, the weight {shapes[i]}")
        if isinstance(value, torch.Tensor) and not torch.isfinite(value).all():
            raise ValueError(f"{key} holds NaN or infinite values")
        state.setdefault(i, {})[name] = value
    return {"state": state, "param_groups": groups}


def _sniff(path: Path) -> None:
    """Raise ModelFileError unless the file starts like a safetensors file.

    A safetensors file starts with the 8-byte little-endian length of its JSON header, then
    ``{``. Anything else is refused with a message naming what it looks like.
    """
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    if len(head) == 9:
        (n,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 2 <= n <= min(size - 8, _MAX_HEADER):
            return
    if head[:4] == b"PK\x03\x04":
        raise ModelFileError(
            f"{path} is a PyTorch/zip checkpoint, not a napari-seglab model; refusing to load it "
            "(such files are pickles and can run code)"
        )
    if head[:1] == b"\x80":
        raise ModelFileError(
            f"{path} looks like a Python pickle, not a napari-seglab model; refusing to load it "
            "(pickles can run code)"
        )
    if len(head) < 9:
        raise ModelFileError(f"{path} is not a napari-seglab model (file too short)")
    raise ModelFileError(f"{path} is not a napari-seglab model (not a safetensors file)")


def read_header(path: str | Path) -> dict[str, Any]:
    """Read and check the JSON header of a model file without loading the weights."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelFileError(f"model path {path} is not a file")
    try:
        _sniff(path)
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 (safetensors raises its own error types)
        raise ModelFileError(f"{path} is not a readable napari-seglab model ({exc})") from None
    if HEADER_KEY not in metadata:
        raise ModelFileError(
            f"{path} is a safetensors file but not a napari-seglab model (no '{HEADER_KEY}' header)"
        )
    try:
        header = json.loads(metadata[HEADER_KEY])
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = exc if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise ModelFileError(f"{path}: the model header is not valid JSON ({reason})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a napari-seglab model (unknown header format)")
    version = header.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: unsupported model format version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was saved by a newer napari-seglab ({header.get('version', '?')}, format "
            f"{version}); this version reads format {FORMAT_VERSION}: upgrade napari-seglab"
        )
    return header


def load_model(path: str | Path, device: str | torch.device = "cpu") -> SegModel:
    """Load a model saved by :func:`save_model` / :meth:`SegModel.save`.

    Parameters
    ----------
    path : str or Path
    device : str or torch.device
        Where to put the network (default CPU).

    Raises
    ------
    ModelFileError
        The file is missing, not a napari-seglab model (a pickle, a foreign or truncated file),
        from a newer format version, its header is invalid (sizes out of range, a normalisation
        that is not finite or has an empty range), its weights do not match its header, or
        they are not finite. Nothing is allocated before the header's network is known to
        match the weights in the file, so a damaged header cannot ask for more memory than
        the file holds.
    """
    path = Path(path)
    header = read_header(path)
    try:
        config = ModelConfig.from_dict(dict(header["model_config"]))
        normalization = Normalization.from_dict(header["normalization"])
        num_classes = int(header["num_classes"])
        in_channels = int(header["in_channels"])
        # SegModel.create checks the values (class and channel counts, normalisation, size)
        with torch.device("meta"):  # shapes only: no memory
            skeleton = SegModel.create(num_classes, in_channels, normalization, config)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelFileError(f"{path}: invalid model header ({exc})") from None
    expected = {k: tuple(v.shape) for k, v in skeleton.net.state_dict().items()}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            keys = list(f.keys())
            found = {
                k: tuple(f.get_slice(k).get_shape())
                for k in keys
                if not k.startswith(OPTIMIZER_PREFIX)
            }
            if found != expected:
                raise ValueError(_shape_difference(expected, found))
            state = {k: f.get_tensor(k) for k in found}
            optimizer = {k: f.get_tensor(k) for k in keys if k.startswith(OPTIMIZER_PREFIX)}
        model = SegModel.create(num_classes, in_channels, normalization, config)
        model.net.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 (safetensors' and torch's errors alike)
        raise ModelFileError(f"{path}: the weights do not match the model header ({exc})") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ModelFileError(
            f"{path}: the model's weights hold NaN or infinite values ({bad[0]}"
            + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
            + "); the file is damaged or the training diverged"
        )
    assert model.net.out_channels == output_channels(num_classes, config)
    if "optimizer" in header or optimizer:
        try:
            model.optimizer_state = _optimizer_state(header.get("optimizer"), optimizer, model)
        except (TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(
                f"{path}: the optimiser state does not fit the weights ({exc})"
            ) from None
    # names are cosmetic: a list of another length is cut or completed with the default names
    names = header.get("class_names")
    names = [str(n) for n in names][:num_classes] if isinstance(names, list) else []
    model.class_names = names + default_class_names(num_classes)[len(names) :]
    model.train_settings = dict(header.get("train_settings") or {})
    model.version = str(header.get("version", ""))
    model.net.eval()
    if str(device) != "cpu":
        from napari_seglab.core.device import resolve_device

        model.net.to(resolve_device(device))
    return model


def _shape_difference(expected: dict[str, tuple], found: dict[str, tuple]) -> str:
    """The first difference between the header's tensor shapes and the file's, in words."""
    missing = sorted(set(expected) - set(found))
    if missing:
        return f"{len(missing)} tensor(s) missing, e.g. {missing[0]}"
    extra = sorted(set(found) - set(expected))
    if extra:
        return f"{len(extra)} unexpected tensor(s), e.g. {extra[0]}"
    key = next(k for k in expected if expected[k] != found[k])
    return f"{key} has shape {found[key]}, the header asks for {expected[key]}"
