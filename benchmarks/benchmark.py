"""Measure meshseg's inference and training paths against a naive PyTorch baseline, same run.

Usage::

    .venv/bin/python benchmarks/benchmark.py [--checkpoint results/models/meshnet/checkpoint.pt]
                                             [--image results/prepared/MNI152-demo-7/t1.nii.gz]

Without ``--image`` a demo subject is built, conformed and prepared on the fly; without
``--checkpoint`` MeshNet small has random weights (speed does not depend on the weights;
label agreement is only meaningful with trained ones). Every case runs in its own process
so that its peak memory (max RSS) is its own; the vote's memory is what its own numpy arrays
allocate (tracemalloc), so an earlier, higher peak of the process cannot hide it. Naive means
what a first PyTorch port does: fp32, default memory format, one forward per subvolume, the
reference's (C, 256^3) uint8 vote counts, and OpenMP's default (spinning) idle threads.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from meshseg.data.demo import make_demo_subject
from meshseg.image.conform import conform_file
from meshseg.image.io import load_volume
from meshseg.image.preprocess import prepare_file
from meshseg.labels import load_labelset
from meshseg.nn import checkpoint, runtime
from meshseg.nn.checkpoint import LoadedModel
from meshseg.nn.crops import Volume, random_batch
from meshseg.nn.inference import predict_volume
from meshseg.nn.models import build_model, model_config
from meshseg.nn.runtime import Compute
from meshseg.nn.subvolumes import inference_locations
from meshseg.nn.vote import VoteAggregator
from meshseg.nn.whole import predict_whole
from meshseg.report.speed import crops_per_second

CPU = torch.device("cpu")
PATCH = 38


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def meshnet(args) -> LoadedModel:
    """The --checkpoint's network, or MeshNet small with random weights (demo_gwm classes)."""
    if args.checkpoint:
        return checkpoint.load(args.checkpoint)
    torch.manual_seed(0)
    spec = model_config("meshnet", 3)
    return LoadedModel(build_model(spec).eval(), load_labelset("demo_gwm"), spec, PATCH)


def fast() -> Compute:
    """meshseg's path on the CPU: channels_last_3d, bf16 autocast where the CPU has it."""
    return Compute(
        CPU,
        runtime.autocast_dtype(CPU, "auto"),
        channels_last=True,
        threads=torch.get_num_threads(),
    )


def naive_vote(model, image, locations, n_classes, patch) -> np.ndarray:
    """Catalyst.Neuro's predictor: one subvolume per forward, (C, 256^3) uint8 counts."""
    counts = np.zeros((n_classes, *image.shape), np.uint8)
    with torch.inference_mode():
        for a, b, c in locations:
            x = torch.from_numpy(
                np.ascontiguousarray(image[a : a + patch, b : b + patch, c : c + patch])
            )
            labels = model(x[None, None]).argmax(1)[0].numpy()
            for k in range(n_classes):
                counts[k, a : a + patch, b : b + patch, c : c + patch] += labels == k
    return counts.argmax(0).astype(np.uint8)


# ---- cases: each returns a dict of measurements; labels go to args.labels_out -------------


def case_whole(args, naive: bool) -> dict:
    image = load_volume(args.image)[0].astype(np.float32)
    model = meshnet(args).model
    start = time.perf_counter()
    if naive:
        with torch.inference_mode():
            labels = model(torch.from_numpy(image)[None, None]).argmax(1)[0].to(torch.uint8).numpy()
    else:
        labels = predict_whole(model, image, fast())
    seconds = time.perf_counter() - start
    np.save(args.labels_out, labels)
    return {"seconds": seconds, "peak_mb": peak_mb()}


def case_whole_uncropped(args) -> dict:
    """Timing only: the fast path when every voxel holds tissue (no box to crop to), as on a
    T1 that is not skull-stripped and fills its field of view."""
    image = load_volume(args.image)[0].astype(np.float32)
    image[image == 0] = 1e-6
    model = meshnet(args).model
    start = time.perf_counter()
    predict_whole(model, image, fast())
    return {"seconds": time.perf_counter() - start}


def case_whole104(args) -> dict:
    image = load_volume(args.image)[0].astype(np.float32)
    torch.manual_seed(0)
    model = build_model(model_config("meshnet", 104)).eval()
    start = time.perf_counter()
    predict_whole(model, image, fast())
    return {"seconds": time.perf_counter() - start, "peak_mb": peak_mb()}


def case_crops(args, naive: bool) -> dict:
    image = load_volume(args.image)[0].astype(np.float32)
    loaded = meshnet(args)
    locations = inference_locations(512, image.shape[0], loaded.patch, 64, np.random.default_rng(0))
    start = time.perf_counter()
    if naive:
        labels = naive_vote(loaded.model, image, locations, loaded.labelset.n_classes, loaded.patch)
    else:
        # the naive port's rule, so that the label agreement measures the precision only
        labels = predict_volume(loaded, image, locations, 16, fast(), vote="hard-lowest")
    seconds = time.perf_counter() - start
    np.save(args.labels_out, labels)
    return {"seconds": seconds, "peak_mb": peak_mb()}


def case_vote_memory(args, naive: bool, n_classes: int) -> dict:
    image = np.zeros((256,) * 3, np.float32)  # the volume itself: 64 MB
    locations = inference_locations(512, 256, PATCH, 64, np.random.default_rng(0))
    labels = np.random.default_rng(0).integers(
        0, n_classes, (512, PATCH, PATCH, PATCH), dtype=np.uint8
    )
    tracemalloc.start()  # numpy reports its arrays' allocations to tracemalloc
    if naive:
        counts = np.zeros((n_classes, *image.shape), np.uint8)
        for crop, (a, b, c) in zip(labels, locations):
            for k in range(n_classes):
                counts[k, a : a + PATCH, b : b + PATCH, c : c + PATCH] += crop == k
        counts.argmax(0)
    else:  # the default vote, fed as inference feeds it: 16 crops' classes and confidence
        votes = VoteAggregator(image.shape, n_classes, rule="hard")
        rng = np.random.default_rng(0)
        for batch in np.array_split(np.argsort(locations[:, 0], kind="stable"), 32):
            confidence = rng.random((len(batch), PATCH, PATCH, PATCH), dtype=np.float32)
            votes.add(labels[batch], locations[batch], confidence)
        votes.result()
    _, peak = tracemalloc.get_traced_memory()
    return {"above_volume_mb": peak / 2**20}


def case_throughput(args, arch: str, naive: bool) -> dict:
    torch.manual_seed(0)
    model = build_model(model_config(arch, 3, width=args.unet_width)).eval()
    batches = 4
    if not naive:  # the fused network predict_crops runs, as reference_speed.tsv times it
        return {"per_second": crops_per_second(model, fast(), 16, PATCH, batches)}
    x = torch.rand(16, 1, PATCH, PATCH, PATCH)
    with torch.inference_mode():
        model(x[:1])  # warm-up
        start = time.perf_counter()
        for _ in range(batches):
            for one in x.split(1):
                model(one)
    return {"per_second": batches * 16 / (time.perf_counter() - start)}


def spin() -> None:
    while True:
        pass


def case_training(args, naive: bool, busy: int = 0) -> dict:
    """Training steps/s; with ``busy``, while that many other CPU-bound processes run."""
    competitors = [multiprocessing.Process(target=spin, daemon=True) for _ in range(busy)]
    for process in competitors:
        process.start()
    torch.manual_seed(0)
    image = load_volume(args.image)[0].astype(np.float32)
    volumes = [Volume("bench", image, (image > 0.5).astype(np.uint8))]
    model = build_model(model_config("meshnet", 3)).train()
    compute = Compute(CPU, None) if naive else fast()
    if compute.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    rng = np.random.default_rng(0)
    steps, elapsed = 4, 0.0
    for step in range(steps + 1):  # the first step is a warm-up
        start = time.perf_counter()
        x, y = random_batch(volumes, 16, PATCH, 64, rng)
        with compute.autocast():
            logits = model(compute.to_device(x))
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        elapsed += (time.perf_counter() - start) if step else 0.0
    for process in competitors:
        process.terminate()
    return {"steps_per_second": steps / elapsed}


def training_flops(model: torch.nn.Module, batch: int = 16, patch: int = PATCH) -> float:
    """Floating-point operations of one training step's convolutions (multiply and add each
    count): the forward pass, the input gradient (not for the first layer, whose input needs
    none) and the weight gradient each cost one forward's."""
    flops, first = 0.0, True
    for conv in (m for m in model.modules() if isinstance(m, torch.nn.Conv3d)):
        macs = conv.in_channels * conv.out_channels * np.prod(conv.kernel_size) // conv.groups
        flops += 2 * macs * batch * patch**3 * (2 if first else 3)
        first = False
    return flops


def matmul_rate(dtype: torch.dtype | None, size: int = 2048, repeats: int = 8) -> float:
    """This CPU's matrix multiplication speed in GFLOP/s, fp32 or ``dtype``: about the most
    any convolution kernel reaches on it."""
    a, b = torch.rand(2, size, size, dtype=dtype or torch.float32)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def case_floor(args, naive: bool) -> dict:
    """The least time a MeshNet small training step can take at this CPU's matmul speed: its
    convolutions' FLOPs alone, in fp32 (naive) or meshseg's precision."""
    rate = matmul_rate(None if naive else fast().dtype)
    flops = training_flops(build_model(model_config("meshnet", 3)))
    return {"gflops_per_second": rate, "seconds": flops / rate / 1e9}


CASES = {
    "whole-naive": lambda a: case_whole(a, True),
    "whole-fast": lambda a: case_whole(a, False),
    "whole104-fast": case_whole104,
    "whole-uncropped-fast": case_whole_uncropped,
    "crops-naive": lambda a: case_crops(a, True),
    "crops-fast": lambda a: case_crops(a, False),
    "vote3-naive": lambda a: case_vote_memory(a, True, 3),
    "vote3-fast": lambda a: case_vote_memory(a, False, 3),
    "vote104-naive": lambda a: case_vote_memory(a, True, 104),
    "vote104-fast": lambda a: case_vote_memory(a, False, 104),
    "meshnet-naive": lambda a: case_throughput(a, "meshnet", True),
    "meshnet-fast": lambda a: case_throughput(a, "meshnet", False),
    "unet-naive": lambda a: case_throughput(a, "unet", True),
    "unet-fast": lambda a: case_throughput(a, "unet", False),
    "train-naive": lambda a: case_training(a, True),
    "train-fast": lambda a: case_training(a, False),
    "train-busy-naive": lambda a: case_training(a, True, busy=2),
    "train-busy-fast": lambda a: case_training(a, False, busy=2),
    "floor-naive": lambda a: case_floor(a, True),
    "floor-fast": lambda a: case_floor(a, False),
}


def run_case(name: str, args, folder: Path) -> dict:
    """Run one case in a fresh process; return its measurements (labels path included)."""
    naive = name.endswith("-naive")
    labels = folder / f"{name}.npy"
    command = [
        sys.executable,
        __file__,
        "--case",
        name,
        "--image",
        str(args.image),
        "--labels-out",
        str(labels),
        "--unet-width",
        str(args.unet_width),
    ]
    if args.checkpoint:
        command += ["--checkpoint", str(args.checkpoint)]
    # The naive port runs with OpenMP's default waiting; meshseg sets OMP_WAIT_POLICY=PASSIVE.
    env = {k: v for k, v in os.environ.items() if not (naive and k == "OMP_WAIT_POLICY")}
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return {**json.loads(result.stdout.splitlines()[-1]), "labels": labels}


def demo_image(folder: Path) -> Path:
    make_demo_subject(7, 2021, folder / "t1w.nii.gz", folder / "labels.nii.gz")
    conform_file(folder / "t1w.nii.gz", folder / "conformed.nii.gz", backend="python")
    prepare_file(folder / "conformed.nii.gz", folder / "prepared.nii.gz")
    return folder / "prepared.nii.gz"


def agreement(a: dict, b: dict) -> float:
    return float((np.load(a["labels"]) == np.load(b["labels"])).mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--image", type=Path)
    parser.add_argument("--unet-width", type=int, default=16)
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--labels-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        print(json.dumps(CASES[args.case](args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        args.image = args.image or demo_image(folder)
        r = {name: run_case(name, args, folder) for name in CASES}
        whole_agreement = agreement(r["whole-naive"], r["whole-fast"])
        crops_agreement = agreement(r["crops-naive"], r["crops-fast"])
    dtype = fast().dtype
    rows = [
        ("whole-volume MeshNet small, s", r["whole-naive"]["seconds"], r["whole-fast"]["seconds"]),
        (
            "  without the tissue crop (full 256^3 box), s",
            r["whole-naive"]["seconds"],
            r["whole-uncropped-fast"]["seconds"],
        ),
        ("  peak memory, MB", r["whole-naive"]["peak_mb"], r["whole-fast"]["peak_mb"]),
        ("  peak memory at 104 classes, MB", float("nan"), r["whole104-fast"]["peak_mb"]),
        (
            "512-subvolume inference with vote, s",
            r["crops-naive"]["seconds"],
            r["crops-fast"]["seconds"],
        ),
        (
            "MeshNet small subvolumes/s",
            r["meshnet-naive"]["per_second"],
            r["meshnet-fast"]["per_second"],
        ),
        (
            f"U-Net width {args.unet_width} subvolumes/s",
            r["unet-naive"]["per_second"],
            r["unet-fast"]["per_second"],
        ),
        (
            "training steps/s (MeshNet small, batch 16)",
            r["train-naive"]["steps_per_second"],
            r["train-fast"]["steps_per_second"],
        ),
        (
            "  step time beside 2 busy processes, x quiet",
            r["train-naive"]["steps_per_second"] / r["train-busy-naive"]["steps_per_second"],
            r["train-fast"]["steps_per_second"] / r["train-busy-fast"]["steps_per_second"],
        ),
        (
            "  step floor: convolutions at matmul speed, s",
            r["floor-naive"]["seconds"],
            r["floor-fast"]["seconds"],
        ),
        (
            "vote memory above the volume, 3 classes, MB",
            r["vote3-naive"]["above_volume_mb"],
            r["vote3-fast"]["above_volume_mb"],
        ),
        (
            "vote memory above the volume, 104 classes, MB",
            r["vote104-naive"]["above_volume_mb"],
            r["vote104-fast"]["above_volume_mb"],
        ),
    ]
    print(
        f"CPU: {runtime.cpu_isa()}; device: {fast().describe()}; meshseg path: "
        f"Conv+BatchNorm+ReLU fused, channels_last_3d, {'bf16' if dtype else 'fp32'} autocast, "
        f"batch 16, slab vote, "
        f"whole volume cropped to the tissue box; weights: "
        f"{args.checkpoint or 'random'}\n"
    )
    print(f"| {'measure':<48} | {'naive':>10} | {'meshseg':>10} | {'ratio':>7} |")
    print(f"|{'-' * 50}|{'-' * 12}|{'-' * 12}|{'-' * 9}|")
    for name, naive, ours in rows:
        gain = (
            ours / naive if name.endswith("/s") or "/s " in name else naive / max(ours, 1e-9)
        )  # rates vs costs
        print(f"| {name:<48} | {naive:>10.2f} | {ours:>10.2f} | {gain:>6.2f}x |")
    print(
        f"\nlabel agreement with fp32: whole volume {100 * whole_agreement:.3f} %, "
        f"512 subvolumes {100 * crops_agreement:.3f} %"
    )
    naive_step = 1 / r["train-naive"]["steps_per_second"]
    print(
        f"matmul speed: fp32 {r['floor-naive']['gflops_per_second']:.0f} GFLOP/s, meshseg's "
        f"precision {r['floor-fast']['gflops_per_second']:.0f} GFLOP/s; the naive step "
        f"({naive_step:.2f} s) allows at most "
        f"{naive_step / r['floor-fast']['seconds']:.2f}x training speed at meshseg's precision "
        f"on this CPU (convolutions alone, at matmul speed)"
    )


if __name__ == "__main__":
    main()
