"""Training loop: cross-entropy, Adam + OneCycle, random Gaussian-centred 38^3 crops.

Follows Catalyst.Neuro's recipe (docs/references.md: Training). The loop checkpoints its whole
state every ``checkpoint_every`` steps to ``<checkpoint>.resume.pt`` and continues from it
after a kill, drawing the same batches it would have drawn without the interruption.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from meshseg.image.io import write_table
from meshseg.metrics import confusion_matrix, dice_from_confusion, foreground_dice
from meshseg.nn import runtime
from meshseg.nn.checkpoint import (
    DEFAULT_PATCH,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from meshseg.nn.crops import TrainingData, Volume, crop_batch, random_batch
from meshseg.nn.models import build_model
from meshseg.nn.models import model_config as make_model_config
from meshseg.nn.runtime import Compute
from meshseg.nn.subvolumes import gaussian_locations

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    steps: int = 300  # optimizer steps (batches)
    batch_size: int = 16  # crops per step, as the reference
    patch: int = DEFAULT_PATCH  # crop edge in voxels; inference uses the checkpoint's
    sd: float = 64.0  # crop-centre standard deviation (voxels); sqrt(50) for the seed's text
    max_lr: float = 0.02  # OneCycleLR peak, as the reference
    seed: int = 0
    validate_every: int = 25  # steps between validation Dice measurements
    val_crops: int = 32  # fixed validation crops per validation volume
    checkpoint_every: int = 25  # steps between resumable checkpoints
    precision: str = "auto"  # auto | fp32 | bf16 autocast
    channels_last: bool = True  # channels_last_3d memory format (faster convolutions on CPU)
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # intra-op CPU threads
    deterministic: bool = True  # deterministic kernels: exact reruns and resumes on CUDA too

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "patch", "validate_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train {name} must be >= 1, got {getattr(self, name)}")
        if self.val_crops < 0 or not self.sd > 0 or not self.max_lr > 0:
            raise ValueError(
                f"train val_crops must be >= 0 and sd, max_lr > 0, got "
                f"{self.val_crops}, {self.sd}, {self.max_lr}"
            )
        runtime.check_settings(self.device, self.precision, self.threads)


@dataclass
class TrainingRun:
    """The state a training run advances step by step, and what a resumed run must share."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    rng: np.random.Generator  # draws the training crops
    identity: dict  # train_config (but threads), model_config, labelset, training volumes
    step: int = 0
    curve: list[dict] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # of the steps since the last curve row

    def snapshot(self, compute: Compute) -> dict:
        """The checkpoint dict of this run (meshseg.nn.checkpoint)."""
        return {
            **self.identity,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "curve": self.curve,
            "losses": self.losses,
            "rng": rng_state(self.rng, compute.device),
        }


@torch.no_grad()
def validation_dice(
    model: torch.nn.Module, batches: list, n_classes: int, compute: Compute
) -> float:
    """Mean foreground Dice over fixed validation crops, pooled over all crops."""
    model.eval()
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for x, y in batches:
        with compute.autocast():
            pred = model(compute.to_device(x)).argmax(1).cpu().numpy()
        cm += confusion_matrix(y.numpy(), pred, n_classes)
    model.train()
    return foreground_dice(dice_from_confusion(cm))


def _validation_batches(volumes: list[Volume], config: TrainConfig) -> list:
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    batches = []
    for index in range(len(volumes)):
        locations = gaussian_locations(
            config.val_crops, volumes[index].image.shape[0], config.patch, config.sd, rng
        )
        for start in range(0, config.val_crops, config.batch_size):
            chunk = locations[start : start + config.batch_size]
            batches.append(crop_batch(volumes, np.full(len(chunk), index), chunk, config.patch))
    return batches


def setup(
    config: TrainConfig, model_config: dict, data: TrainingData, compute: Compute
) -> TrainingRun:
    """A fresh run: the seeded network on the device, Adam + OneCycle, the crop generator."""
    torch.manual_seed(config.seed)
    model = build_model(model_config).to(compute.device)
    if compute.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.max_lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.max_lr, total_steps=config.steps
    )
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0]))
    # What a resumable state must share with this run (threads may differ between machines).
    identity = {
        "train_config": {k: v for k, v in asdict(config).items() if k != "threads"},
        "model_config": model_config,
        "labelset": data.labelset.to_dict(),
        "train": [v.name for v in data.train],
    }
    return TrainingRun(model, optimizer, scheduler, rng, identity)


def resume(run: TrainingRun, resume_path: Path, compute: Compute) -> None:
    """Continue ``run`` from the state at ``resume_path`` if there is one made by this run's
    configuration; a state of another configuration is ignored."""
    if not resume_path.is_file():
        return
    state = load_checkpoint(resume_path)
    if not all(state.get(k) == v for k, v in run.identity.items()):
        log.info("ignoring %s: it was made with another configuration", resume_path)
        return
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    restore_rng_state(state["rng"], run.rng, compute.device)
    run.step, run.curve, run.losses = state["step"], state["curve"], state["losses"]
    log.info("resuming from %s at step %d", resume_path, run.step)


def train_step(
    run: TrainingRun, volumes: list[Volume], config: TrainConfig, compute: Compute
) -> float:
    """One optimizer step on a random batch of crops; returns its loss."""
    x, y = random_batch(volumes, config.batch_size, config.patch, config.sd, run.rng)
    with compute.autocast():
        logits = run.model(compute.to_device(x))  # (B, C, p, p, p)
    loss = F.cross_entropy(logits.float(), compute.to_device(y))
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.scheduler.step()
    run.step += 1
    run.losses.append(loss.item())
    return run.losses[-1]


def write(
    run: TrainingRun,
    compute: Compute,
    checkpoint_path: str | os.PathLike,
    curve_path: str | os.PathLike,
) -> None:
    """Write the final checkpoint (with the device it trained on) and the curve (TSV)."""
    save_checkpoint({**run.snapshot(compute), "device": compute.describe()}, checkpoint_path)
    write_table(
        pd.DataFrame(run.curve, columns=["step", "loss", "lr", "val_dice"]),
        curve_path,
        float_format=None,
    )


def train(
    config: TrainConfig,
    model_config: dict,
    data: TrainingData,
    checkpoint_path: str | os.PathLike,
    curve_path: str | os.PathLike,
) -> None:
    """Train one model and write its final checkpoint and training curve (TSV)."""
    if not data.train:
        raise ValueError("no training subjects: the subject sheet has no 'train' rows")
    runtime.set_deterministic(config.deterministic)  # before CUDA starts (cuBLAS workspace)
    compute = Compute.from_config(config)
    log.info(
        "training %s on %s, %d threads, %d train / %d validation volumes",
        model_config,
        compute.describe(),
        compute.threads,
        len(data.train),
        len(data.validation),
    )
    run = setup(config, model_config, data, compute)
    resume_path = Path(str(checkpoint_path) + ".resume.pt")
    resume(run, resume_path, compute)
    val_batches = _validation_batches(data.validation, config)
    run.model.train()
    progress = tqdm(
        total=config.steps,
        initial=run.step,
        file=sys.stderr,
        ascii=True,
        mininterval=10,
        desc=f"train {model_config['arch']}",
    )
    while run.step < config.steps:
        loss = train_step(run, data.train, config, compute)
        progress.update(1)
        progress.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if run.step % config.validate_every == 0 or run.step == config.steps:
            dice = (
                validation_dice(run.model, val_batches, data.labelset.n_classes, compute)
                if val_batches
                else float("nan")
            )
            run.curve.append(
                {
                    "step": run.step,
                    "loss": float(np.mean(run.losses)),
                    "lr": run.scheduler.get_last_lr()[0],
                    "val_dice": dice,
                }
            )
            log.info(
                "step %d: loss %.4f, validation foreground Dice %.4f",
                run.step,
                run.curve[-1]["loss"],
                dice,
            )
            run.losses = []
        if run.step % config.checkpoint_every == 0 and run.step < config.steps:
            save_checkpoint(run.snapshot(compute), resume_path)
    progress.close()
    write(run, compute, checkpoint_path, curve_path)
    resume_path.unlink(missing_ok=True)


def train_files(
    config: TrainConfig,
    model_params: dict,
    data: TrainingData,
    checkpoint_path: str | os.PathLike,
    curve_path: str | os.PathLike,
) -> None:
    """Train the model entry ``model_params`` of the workflow config (its spec without the class
    count, which is ``data``'s label set's)."""
    train(
        config,
        make_model_config(n_classes=data.labelset.n_classes, **model_params),
        data,
        checkpoint_path,
        curve_path,
    )
