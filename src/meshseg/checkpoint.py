"""Self-describing checkpoints: everything needed to rebuild, resume or apply a model.

A checkpoint is one dict (after nanoGPT)::

    {"model": state_dict, "optimizer": ..., "scheduler": ..., "step": int,
     "model_config": {"arch": ..., ...}, "labelset": {...}, "train_config": {...},
     "curve": [{"step", "loss", "lr", "val_dice"}, ...], "rng": {...}, "meshseg_version": str}
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from meshseg import __version__
from meshseg.io import atomic_path
from meshseg.labels import LabelSet
from meshseg.models import build_model

REQUIRED_KEYS = ("model", "model_config", "labelset", "step")


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save({**state, "meshseg_version": __version__}, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint and check it is one of ours; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # truncated zip, pickle errors, ...
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path}: not a meshseg checkpoint (missing {missing})")
    return state


def model_from_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, LabelSet, dict]:
    """Rebuild the network in eval mode, its label set and the raw checkpoint dict."""
    state = load_checkpoint(path)
    model = build_model(state["model_config"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the architecture {state['model_config']} "
                         f"({str(err).splitlines()[0]})") from None
    return model.eval(), LabelSet.from_dict(state["labelset"]), state


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every tensor in the model's state dict (weights, biases, BatchNorm buffers)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())
