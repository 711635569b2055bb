"""Training loop: cross-entropy, Adam + OneCycle, random Gaussian-centred 38^3 crops.

Follows Catalyst.Neuro's recipe (docs/references.md: Training). The loop checkpoints its whole
state every ``checkpoint_every`` steps to ``<checkpoint>.resume.pt`` and continues from it
after a kill, drawing the same batches it would have drawn without the interruption.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from meshseg.image.io import write_text
from meshseg.labels import LabelSet, load_labelset
from meshseg.metrics import confusion_matrix, dice_from_confusion, foreground_dice
from meshseg.nn import runtime
from meshseg.nn.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from meshseg.nn.crops import Volume, crop_batch, load_volumes, random_batch
from meshseg.nn.models import build_model
from meshseg.nn.models import model_config as make_model_config
from meshseg.nn.subvolumes import gaussian_locations

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    steps: int = 300  # optimizer steps (batches)
    batch_size: int = 16  # crops per step, as the reference
    patch: int = 38  # crop edge in voxels
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


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last_3d) if channels_last and x.ndim == 5 else x


@torch.no_grad()
def validation_dice(model: torch.nn.Module, batches: list, n_classes: int, device: torch.device,
                    dtype: torch.dtype | None, channels_last: bool) -> float:
    """Mean foreground Dice over fixed validation crops, pooled over all crops."""
    model.eval()
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for x, y in batches:
        with runtime.autocast(device, dtype):
            pred = model(_to_device(x, device, channels_last)).argmax(1).cpu().numpy()
        cm += confusion_matrix(y.numpy(), pred, n_classes)
    model.train()
    return foreground_dice(dice_from_confusion(cm))


def _validation_batches(volumes: list[Volume], config: TrainConfig) -> list:
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    batches = []
    for index in range(len(volumes)):
        locations = gaussian_locations(config.val_crops, volumes[index].image.shape[0], config.patch,
                                       config.sd, rng)
        for start in range(0, config.val_crops, config.batch_size):
            chunk = locations[start:start + config.batch_size]
            batches.append(crop_batch(volumes, np.full(len(chunk), index), chunk, config.patch))
    return batches


def train(config: TrainConfig, model_config: dict, labelset: LabelSet, train_volumes: list[Volume],
          val_volumes: list[Volume], checkpoint_path: str | os.PathLike,
          curve_path: str | os.PathLike) -> None:
    """Train one model and write its final checkpoint and training curve (TSV)."""
    if not train_volumes:
        raise ValueError("no training subjects: the subject sheet has no 'train' rows")
    runtime.set_deterministic(config.deterministic)  # before CUDA starts (cuBLAS workspace)
    threads = runtime.set_threads(config.threads)
    device = runtime.select_device(config.device)
    dtype = runtime.autocast_dtype(device, config.precision)
    log.info("training %s on %s, %d threads, %d train / %d validation volumes", model_config,
             runtime.describe(device, dtype), threads, len(train_volumes), len(val_volumes))

    torch.manual_seed(config.seed)
    model = build_model(model_config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.max_lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.max_lr,
                                                    total_steps=config.steps)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0]))
    # What a resumable state must share with this run (threads may differ between machines).
    identity = {"train_config": {k: v for k, v in asdict(config).items() if k != "threads"},
                "model_config": model_config,
                "labelset": labelset.to_dict(), "train": [v.name for v in train_volumes]}
    resume_path = Path(str(checkpoint_path) + ".resume.pt")
    step, curve, losses = 0, [], []  # losses: of the steps since the last curve row
    if resume_path.is_file():
        state = load_checkpoint(resume_path)
        if all(state.get(k) == v for k, v in identity.items()):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            restore_rng_state(state["rng"], rng, device)
            step, curve, losses = state["step"], state["curve"], state["losses"]
            log.info("resuming from %s at step %d", resume_path, step)
        else:
            log.info("ignoring %s: it was made with another configuration", resume_path)

    def snapshot() -> dict:
        return {**identity, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "step": step, "curve": curve,
                "losses": losses, "rng": rng_state(rng, device)}

    val_batches = _validation_batches(val_volumes, config)
    model.train()
    progress = tqdm(total=config.steps, initial=step, file=sys.stderr, ascii=True, mininterval=10,
                    desc=f"train {model_config['arch']}")
    while step < config.steps:
        x, y = random_batch(train_volumes, config.batch_size, config.patch, config.sd, rng)
        with runtime.autocast(device, dtype):
            logits = model(_to_device(x, device, config.channels_last))  # (B, C, p, p, p)
        loss = F.cross_entropy(logits.float(), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        losses.append(loss.item())
        progress.update(1)
        progress.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        if step % config.validate_every == 0 or step == config.steps:
            dice = (validation_dice(model, val_batches, labelset.n_classes, device, dtype,
                                    config.channels_last) if val_batches else float("nan"))
            curve.append({"step": step, "loss": float(np.mean(losses)),
                          "lr": scheduler.get_last_lr()[0], "val_dice": dice})
            log.info("step %d: loss %.4f, validation foreground Dice %.4f", step, curve[-1]["loss"], dice)
            losses = []
        if step % config.checkpoint_every == 0 and step < config.steps:
            save_checkpoint(snapshot(), resume_path)
    progress.close()
    final = snapshot()
    final["device"] = runtime.describe(device, dtype)
    save_checkpoint(final, checkpoint_path)
    write_text(pd.DataFrame(curve, columns=["step", "loss", "lr", "val_dice"]).to_csv(sep="\t", index=False),
               curve_path)
    resume_path.unlink(missing_ok=True)


def train_files(config: TrainConfig, model_params: dict, labelset_name: str,
                train_images: list[str], train_labels: list[str], val_images: list[str],
                val_labels: list[str], checkpoint_path: str | os.PathLike,
                curve_path: str | os.PathLike) -> None:
    """Load the prepared volumes and label set named in the workflow config, then train."""
    labelset = load_labelset(labelset_name)
    model_config = make_model_config(n_classes=labelset.n_classes, **model_params)
    train(config, model_config, labelset, load_volumes(train_images, train_labels, labelset),
          load_volumes(val_images, val_labels, labelset), checkpoint_path, curve_path)
