"""Robust teachers from the RobustBench model zoo, loaded without running any code from a file.

RobustBench (``pip install -e ".[robustbench]"``) knows each model's architecture and where its
weights live; SAAD and IGDM take their teachers from it. :func:`robustbench_teacher` builds the
architecture through RobustBench's zoo, downloads the checkpoint into RobustBench's ``model_dir``
layout (``<model_dir>/<dataset>/<threat_model>/<name>.pt``) if it is not there, and loads the
state dict itself with ``torch.load(weights_only=True)``, so a checkpoint can hold tensors only,
never code. The teacher comes back in eval mode and frozen. Inputs are images in [0, 1]:
RobustBench models normalise inside.
"""

from __future__ import annotations

import difflib
import importlib
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

_INFO = Path(__file__).resolve().parent / "_data" / "robustbench_cifar10_linf.json"


class TeacherInfo(NamedTuple):
    """What RobustBench lists for a zoo entry (cifar10, Linf, ε = 8/255), in %; None where the
    bundled table has no entry (other datasets or threat models)."""

    name: str
    architecture: str | None
    clean_acc: float | None
    autoattack_acc: float | None
    paper: str | None
    checkpoint: Path


class CheckpointError(ValueError):
    """A checkpoint file that cannot be a model's weights (a failed or cut-off download)."""


def listed(name: str) -> dict[str, Any] | None:
    """RobustBench's listed accuracies for a cifar10 Linf entry, from the table bundled with this
    library (transcribed from RobustBench's model_info files; the commit is in the table)."""
    return json.loads(_INFO.read_text())["models"].get(name)


def _robustbench():
    # robustbench 1.1.1 imports AutoAttack as ``autoattack``, the name of its git install; the
    # package index's build of the same code is ``pyautoattack``.
    if "autoattack" not in sys.modules:
        try:
            importlib.import_module("autoattack")
        except ImportError:
            try:
                sys.modules["autoattack"] = importlib.import_module("pyautoattack")
            except ImportError:
                pass
    try:
        from robustbench import utils
        from robustbench.model_zoo import model_dicts
        from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    except ImportError as err:
        raise ImportError(f'RobustBench teachers need robustbench: pip install -e ".[robustbench]" ({err})') from err
    return utils, model_dicts, BenchmarkDataset, ThreatModel


def _state_dict(path: Path, retry: str) -> dict[str, torch.Tensor]:
    """The tensors of a RobustBench checkpoint, read with weights_only=True; an HTML page saved in
    its place or a cut-off file is a :class:`CheckpointError` saying what to do."""
    head = path.read_bytes()[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<")):
        raise CheckpointError(
            f"{path} is an HTML page, not a checkpoint: the download was answered with a web page (a quota or "
            f"sign-in page of the file host). Delete {path} and {retry}."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(f"{path} holds objects other than tensors; refusing to load it ({err})") from None
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt: {type(err).__name__}: {err}). "
            f"Delete {path} and {retry}."
        ) from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointError(f"{path} does not hold a state dict (name → tensor); got {type(checkpoint).__name__}")
    # The prefixes RobustBench's own loader strips (DataParallel's "module.", some entries' "model.").
    state = {}
    for key, value in checkpoint.items():
        for prefix in ("module.", "model."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        state[key] = value
    return state


def robustbench_teacher(
    name: str,
    *,
    model_dir: str | Path = "models",
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    download: bool = True,
) -> tuple[nn.Module, TeacherInfo]:
    """A RobustBench zoo model as a frozen teacher, and what RobustBench lists for it.

    Args:
        name: the zoo name, e.g. ``"Wong2020Fast"`` (PreActResNet-18) or ``"Chen2021LTD_WRN34_20"``.
        model_dir: RobustBench's checkpoint folder; the file is
            ``<model_dir>/<dataset>/<threat_model>/<name>.pt``.
        dataset, threat_model: as RobustBench names them.
        download: fetch a missing checkpoint through RobustBench (False: a missing file is an error).

    Returns:
        ``(teacher, info)``: the model in eval mode with ``requires_grad_(False)``, taking images in
        [0, 1]; :class:`TeacherInfo` with the listed clean and AutoAttack accuracy.

    Raises:
        ValueError: an unknown name (the closest zoo names are suggested), a missing file with
            ``download=False``; :class:`CheckpointError` for a file that is an HTML page, cut
            off, or holds anything but tensors.

    In one line (it downloads the checkpoint on first use; RobustBench lists this one at 83.34%
    clean and 43.21% AutoAttack accuracy)::

        teacher, info = robustbench_teacher("Wong2020Fast", model_dir="models")
    """
    utils, model_dicts, BenchmarkDataset, ThreatModel = _robustbench()
    try:
        zoo = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat_model)]
    except (ValueError, KeyError):
        raise ValueError(f"RobustBench has no zoo for dataset={dataset!r}, threat_model={threat_model!r}") from None
    if name not in zoo:
        close = difflib.get_close_matches(name, list(zoo), n=5, cutoff=0.4)
        raise ValueError(f"{name!r} is not in RobustBench's {dataset} {threat_model} zoo; closest: {close}")
    entry = zoo[name]
    if isinstance(entry.get("gdrive_id"), list):
        raise ValueError(f"{name!r} is an ensemble of several checkpoints, which this loader does not take")
    path = Path(model_dir) / dataset / threat_model / f"{name}.pt"
    retry = "run again to download it anew (or put the file there by hand)"
    if not path.is_file():
        if not download:
            raise ValueError(f"no checkpoint at {path}; pass download=True or put the file there")
        path.parent.mkdir(parents=True, exist_ok=True)
        utils.download_gdrive_new(entry["gdrive_id"], path)
    model = entry["model"]()
    state = _state_dict(path, retry)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path} does not fit {name}'s architecture ({err}). Delete {path} and {retry}."
        ) from None
    listed_info = listed(name) if (dataset, threat_model) == ("cifar10", "Linf") else None
    info = TeacherInfo(
        name,
        (listed_info or {}).get("architecture"),
        (listed_info or {}).get("clean_acc"),
        (listed_info or {}).get("autoattack_acc"),
        (listed_info or {}).get("paper"),
        path,
    )
    return model.eval().requires_grad_(False), info
