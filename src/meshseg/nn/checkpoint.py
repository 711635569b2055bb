"""Self-describing checkpoints: everything needed to rebuild, resume or apply a model.

A checkpoint is one dict (after nanoGPT)::

    {"model": state_dict, "optimizer": ..., "scheduler": ..., "step": int,
     "model_config": {"arch": ..., ...}, "labelset": {...}, "train_config": {...},
     "curve": [{"step", "loss", "lr", "val_dice"}, ...], "losses": [...], "rng": {...},
     "preprocess": {...}, "meshseg_version": str}

``losses`` are the step losses since the last curve row (that row's mean is taken over them);
``rng`` holds the random states of :func:`rng_state`, so that a resumed run continues exactly.
``preprocess`` (optional, :data:`PREPROCESS` when absent) says what the network expects around
it: its input normalisation, largest-component post-processing and inference mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from meshseg import __version__
from meshseg.image.io import atomic_path
from meshseg.labels import LabelSet
from meshseg.nn.models import build_model, count_parameters

REQUIRED_KEYS = ("model", "model_config", "labelset", "step")
DEFAULT_PATCH = 38  # crop edge of a checkpoint without a train_config: the reference's 38^3
# What a checkpoint without a "preprocess" record expects: meshseg's own preparation.
# normalisation: {"name": "minmax"} (the prepared volume as it is) or
# {"name": "qnormalize", "low": 0.02, "high": 0.98} (meshseg.image.intensity.qnormalise,
# brainchop's);
# largest_component: keep only the largest 26-connected non-zero component of the labels;
# inference: the mode "auto" picks (vote | whole).
PREPROCESS = {"normalisation": {"name": "minmax"}, "largest_component": False, "inference": "vote"}
NORMALISATIONS = ("minmax", "qnormalize")
INFERENCE_MODES = ("vote", "whole")
# Checkpoint keys a loaded model leaves out of LoadedModel.info: the tensors and their states.
STATE_KEYS = ("model", "optimizer", "scheduler", "rng", "losses")


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
        raise ValueError(
            f"{path}: not a readable checkpoint ({type(err).__name__}: {err})"
        ) from None
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path}: not a meshseg checkpoint (missing {missing})")
    return state


def rng_state(rng: np.random.Generator, device: torch.device) -> dict:
    """The random states a resumed run continues from: the crop sampler's ``rng``, torch's CPU
    generator (initial weights, dropout on the CPU) and, on CUDA, ``device``'s generator
    (dropout on the GPU). Only the training device's CUDA state is kept, so a run resumes on a
    node that shows fewer GPUs."""
    state = {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict, rng: np.random.Generator, device: torch.device) -> None:
    """Set ``rng`` and torch's generators to :func:`rng_state`'s ``state``. A CUDA state is
    restored only when training on CUDA; on the CPU it is not needed, and ignored."""
    rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@dataclass
class LoadedModel:
    """A checkpoint read once: its network in eval mode, what it segments and how it was trained.

    ``patch`` is the crop edge it was trained on, which subvolume inference uses too;
    ``info`` holds the checkpoint's other records (``step``, ``train_config``, ``train``,
    ``curve``, ``device``, ``meshseg_version``; ``source`` for an imported network,
    meshseg.nn.tfjs), without the weights and optimizer state;
    ``preprocess`` is the checkpoint's record completed by :data:`PREPROCESS`.
    """

    model: nn.Module
    labelset: LabelSet
    spec: dict  # model_config: {"arch": ..., **the architecture's config fields}
    patch: int = DEFAULT_PATCH
    path: Path | None = None
    info: dict = field(default_factory=dict)
    preprocess: dict = field(default_factory=lambda: dict(PREPROCESS))

    @property
    def parameters(self) -> int:
        """Trainable parameters of the network."""
        return count_parameters(self.model)

    @property
    def weight_bytes(self) -> int:
        """Bytes of the network's state-dict tensors (:func:`weight_bytes`)."""
        return weight_bytes(self.model)


def load(path: str | os.PathLike, labelset: LabelSet | None = None) -> LoadedModel:
    """Read the checkpoint at ``path`` once and rebuild its network in eval mode (on the CPU).

    Raises ``ValueError`` naming the file when the weights do not fit the stored architecture,
    when the network's class count differs from its label set's, or, given ``labelset``, when
    the checkpoint was trained for another label set.
    """
    state = load_checkpoint(path)
    try:
        model = build_model(state["model_config"])
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, KeyError, ValueError) as err:
        raise ValueError(
            f"{path}: weights do not fit the architecture {state['model_config']} "
            f"({str(err).splitlines()[0]})"
        ) from None
    stored = LabelSet.from_dict(state["labelset"])
    n_classes = state["model_config"].get("n_classes")
    if n_classes != stored.n_classes:
        raise ValueError(
            f"{path}: the network predicts {n_classes} classes but its label set "
            f"{stored.name!r} has {stored.n_classes}"
        )
    if labelset is not None and labelset.classes != stored.classes:
        raise ValueError(
            f"{path}: trained for label set {stored.name!r} ({stored.n_classes} "
            f"classes), not {labelset.name!r} ({labelset.n_classes} classes)"
        )
    preprocess = {**PREPROCESS, **state.get("preprocess", {})}
    if preprocess["normalisation"].get("name") not in NORMALISATIONS:
        raise ValueError(
            f"{path}: unknown normalisation {preprocess['normalisation']}; "
            f"choose from {list(NORMALISATIONS)}"
        )
    if preprocess["inference"] not in INFERENCE_MODES:
        raise ValueError(
            f"{path}: unknown inference mode {preprocess['inference']!r}; "
            f"choose from {list(INFERENCE_MODES)}"
        )
    patch = state.get("train_config", {}).get("patch", DEFAULT_PATCH)
    skip = (*STATE_KEYS, "model_config", "labelset", "preprocess")
    info = {k: v for k, v in state.items() if k not in skip}
    spec = state["model_config"]
    return LoadedModel(model.eval(), stored, spec, patch, Path(path), info, preprocess)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every tensor in the model's state dict (weights, biases, BatchNorm buffers)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())
