"""Check meshseg's CUDA path end to end, and measure it: run by ``benchmarks/gpu_check.sh``.

On a CUDA GPU it:

1. trains MeshNet small on demo subjects for ``--steps`` steps (bf16 where the GPU has it);
2. runs whole-volume and subvolume-vote inference on a held-out demo subject;
3. compares those labels with the CPU fp32 path on the same checkpoint (>= 99.9 % wanted);
4. checks that a run stopped half way and resumed ends with the weights of an uninterrupted
   one;
5. prints crops/s for MeshNet small and large and U-Net width 64 on the GPU and on the CPU.

Without CUDA it says so, skips every CUDA measurement and runs steps 1, 2, 4 and 5 on the
CPU at smoke-test size (``--smoke``), so that CI keeps the script working.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from meshseg.data.demo import make_demo_subject
from meshseg.image.conform import conform_file
from meshseg.image.io import load_volume
from meshseg.image.preprocess import prepare_file
from meshseg.nn import checkpoint, training
from meshseg.nn.crops import TrainingData
from meshseg.nn.inference import predict_volume
from meshseg.nn.models import build_model, model_config
from meshseg.nn.runtime import Compute, cpu_isa
from meshseg.nn.subvolumes import inference_locations
from meshseg.nn.whole import predict_whole
from meshseg.report.speed import crops_per_second

SPEC = model_config("meshnet", 3)


def demo_pair(index: int, folder: Path) -> tuple[Path, Path]:
    """A prepared demo subject: (image, labels), both 256^3."""
    raw_t1, raw_labels = folder / f"{index}_t1w.nii.gz", folder / f"{index}_labels.nii.gz"
    make_demo_subject(index, 2021, raw_t1, raw_labels)
    pair = []
    for raw, labels in ((raw_t1, False), (raw_labels, True)):
        conformed = raw.with_name(raw.name.replace(".nii.gz", "_conformed.nii.gz"))
        conform_file(raw, conformed, labels=labels, backend="python")
        prepared = raw.with_name(raw.name.replace(".nii.gz", "_prepared.nii.gz"))
        prepare_file(conformed, prepared, labels=labels)
        pair.append(prepared)
    return pair[0], pair[1]


def train_run(config: training.TrainConfig, data: TrainingData, out: Path, stop_at: int = 0):
    """Train to ``out``; with ``stop_at``, stop (as a kill would) when that step's batch is
    drawn, then resume. Returns the steps per second of the uninterrupted part."""
    real_batch, drawn = training.random_batch, {"n": 0}

    def stopping_batch(*args, **kwargs):
        drawn["n"] += 1
        if drawn["n"] == stop_at:
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    training.random_batch = stopping_batch
    try:
        start = time.perf_counter()
        training.train(config, SPEC, data, out, out.with_suffix(".tsv"))
        return config.steps / (time.perf_counter() - start)
    except KeyboardInterrupt:
        training.random_batch = real_batch
        training.train(config, SPEC, data, out, out.with_suffix(".tsv"))
        return float("nan")
    finally:
        training.random_batch = real_batch


def same_weights(a: Path, b: Path) -> bool:
    first, second = checkpoint.load_checkpoint(a)["model"], checkpoint.load_checkpoint(b)["model"]
    return all(torch.equal(first[name], second[name]) for name in first)


def segment(ckpt: Path, image: np.ndarray, compute: Compute, n_subvolumes: int) -> dict:
    """Whole-volume and vote labels of ``image`` on ``compute``."""
    loaded = checkpoint.load(ckpt)
    locations = inference_locations(
        n_subvolumes, image.shape[0], loaded.patch, 64, np.random.default_rng(0)
    )
    return {
        "whole": predict_whole(loaded.model, image, compute),
        "vote": predict_volume(loaded, image, locations, 16, compute),
    }


def speed_table(devices: list[Compute], batches: int, batch_size: int) -> None:
    networks = {
        "MeshNet small": model_config("meshnet", 3),
        "MeshNet large": model_config("meshnet", 3, variant="large"),
        "U-Net width 64": model_config("unet", 3, width=64),
    }
    print(f"\n| network | {' | '.join(c.describe() for c in devices)} |")
    print(f"|---|{'---|' * len(devices)}")
    for name, spec in networks.items():
        torch.manual_seed(0)
        model = build_model(spec)
        rates = [crops_per_second(model, c, batch_size, 38, batches) for c in devices]
        print(f"| {name} crops/s | {' | '.join(f'{r:.1f}' for r in rates)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps on the GPU")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI, no GPU)")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    print(f"CPU: {cpu_isa()}")
    if not cuda:
        print(
            "CUDA: no GPU visible. SKIPPED: training, inference, CPU-agreement, resume and "
            "speed measurements on CUDA. Running the same steps on the CPU at smoke size."
        )
        args.smoke = True
    device = "cuda" if cuda else "cpu"
    steps = 4 if args.smoke else args.steps
    cpu = Compute.from_settings("cpu", "fp32", channels_last=False, threads=torch.get_num_threads())
    gpu = Compute.from_settings(device, "auto", channels_last=True, threads=cpu.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subjects = [demo_pair(i, folder) for i in ((1, 2) if args.smoke else (1, 2, 3, 4))]
        (image_path, _), train_pairs = subjects[-1], subjects[:-1]
        data = TrainingData.load("demo_gwm", *zip(*train_pairs), [], [])
        config = training.TrainConfig(
            steps=steps,
            batch_size=2 if args.smoke else 16,
            checkpoint_every=max(steps // 2, 1),
            validate_every=steps,
            device=device,
            threads=cpu.threads,
        )
        rate = train_run(config, data, folder / "straight.pt")
        print(f"\ntraining on {gpu.describe()}: {steps} steps, {rate:.2f} steps/s")
        train_run(config, data, folder / "resumed.pt", stop_at=steps // 2 + 1)
        resumed = same_weights(folder / "straight.pt", folder / "resumed.pt")
        print(f"resume: stopped at step {steps // 2 + 1}, resumed; weights equal: {resumed}")

        image = load_volume(image_path)[0].astype(np.float32)
        if args.smoke:  # the central 64^3: a covering grid of 8 crops
            image = np.ascontiguousarray(image[96:160, 96:160, 96:160])
        n_subvolumes = 8 if args.smoke else 512
        ours = segment(folder / "straight.pt", image, gpu, n_subvolumes)
        if cuda:
            reference = segment(folder / "straight.pt", image, cpu, n_subvolumes)
            for mode in ours:
                agreement = 100 * float((ours[mode] == reference[mode]).mean())
                print(f"{mode} inference: labels equal to CPU fp32 on {agreement:.3f} % of voxels")
        else:
            print("inference: whole and vote ran on the CPU; CUDA-vs-CPU agreement SKIPPED")
    speed_table([gpu, cpu] if cuda else [cpu], *((1, 2) if args.smoke else (8, 16)))
    if not resumed:
        raise SystemExit("resume check FAILED: the resumed run's weights differ")


if __name__ == "__main__":
    main()
