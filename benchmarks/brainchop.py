"""Labels, speed and memory of meshseg against brainchop 0.2.5's own CLI, on brainchop's models.

Usage::

    .venv/bin/python benchmarks/brainchop.py MODEL_DIR [MODEL_DIR ...] T1 \\
        [--venv .bcvenv] [--out results/benchmarks/brainchop] [--precision fp32] \\
        [--threads N] [--reuse] [--meshseg-only]

MODEL_DIR is a TF.js layers folder of the brainchop web app (``public/models/<name>/`` of
github.com/neuroneural/brainchop) or one that ``meshseg export --format tfjs`` wrote; T1 a NIfTI
T1 (its ``public/t1_crop.nii.gz``). Per model:

1. brainchop's side: ``brainchop==0.2.5`` goes into its own virtualenv ``--venv`` (made if
   missing; niimath comes from PyPI with it; tinygrad's CPU backend needs ``clang`` on PATH).
   An empty model listing is written to ``~/.cache/brainchop/models.json`` if there is none:
   without one brainchop downloads it at import. Its CLI does not read TF.js folders: ``-m DIR``
   wants a ``model.pth`` from brainchop's converter (``brainchop.convert_tfjs_to_pth``, which
   reads one ``model.bin``: the shards are concatenated into it) and, in ``model.json``, its own
   layer config, written here from the Keras topology. ``_gn`` layers become its GroupNorm
   without weights (one group per channel), and the converter's weight names (conv,
   activation: ``model.0``, ``model.2``...) are renumbered to the CLI's (conv, norm,
   activation: ``model.0``, ``model.3``...).
2. The T1 is conformed once the way that CLI conforms, ``niimath T1 -conform -gz 0 - -odt char``
   (256^3, 1 mm, uint8; intensities cut at the 0.98 quantile), into ``OUT/t1_niimath.nii``.
3. brainchop's CLI segments the T1 itself (``--no-optimize``: no BEAM search, no prompt). Given
   the model as a folder and without ``--inverse-conform``, it saves its labels (after its
   largest-component step) on its niimath-conformed grid, that of step 2 (checked).
4. meshseg imports the folder (``meshseg import brainchop``, not timed, as brainchop's
   conversion is not), with the CLI's preprocessing (qnormalize, largest component), which
   the CLI applies to every folder, a meshseg export too, and segments with one
   whole-volume pass (``meshseg segment --mode whole``): once on the volume of step 2, which
   meshseg's conform leaves as it is (checked), so that only the network paths differ (row
   "niimath input"); once on the T1 through meshseg's own conform, FreeSurfer's 0.999 cut
   (row "meshseg conform"), whose labels are resampled (nearest) onto step 2's grid if the
   grids differ.

Agreement is the fraction of the 256^3 voxels with the same label; Dice is per class present
in either (min and mean in the table, every class in ``OUT/<model>/dice.tsv``). Wall time,
CPU time (user + system) and peak memory are those of each subprocess, start-up, model loading
and file writing included; peak memory is the largest max RSS of its process tree (``wait4``),
not a sum. ``--precision`` is meshseg's (fp32 by default, as brainchop's; ``auto`` takes bf16
where the CPU has it). ``--reuse`` takes brainchop's labels and numbers from an earlier run in
``OUT`` (its CLI needs minutes to an hour per model on two cores). ``--meshseg-only`` skips
brainchop's CLI (its venv still gives niimath): the rows then compare against meshseg's
"niimath input" labels, which measures what the two conforms change.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from meshseg.image.native import resample_nearest
from meshseg.metrics import dice_per_class
from meshseg.nn.checkpoint import load_checkpoint, save_checkpoint
from meshseg.nn.tfjs import BRAINCHOP_PREPROCESS

BRAINCHOP = "brainchop==0.2.5"
LISTING = Path.home() / ".cache" / "brainchop" / "models.json"
# Run in brainchop's virtualenv: its converter, then its CLI MeshNet's own weight names.
CONVERT = """
import json, sys
from brainchop.convert_tfjs_to_pth import convert_tfjs_to_tinygrad
from brainchop.tiny_meshnet import MeshNet
from tinygrad.nn.state import get_state_dict, safe_load, safe_save
tfjs_json, model_bin, folder = sys.argv[1:]
convert_tfjs_to_tinygrad(tfjs_json, model_bin, f"{model_bin}.pth")
converted = safe_load(f"{model_bin}.pth")
layers = json.load(open(f"{folder}/model.json"))["layers"]
net = MeshNet(1, layers[-1]["out_channels"], layers[0]["out_channels"], f"{folder}/model.json")
order = lambda names: sorted(names, key=lambda k: (int(k.split(".")[1]), k))
wanted = get_state_dict(net)
pairs = list(zip(order(wanted), order(converted)))
assert len(wanted) == len(converted), (sorted(wanted), sorted(converted))
assert all(wanted[a].shape == converted[b].shape for a, b in pairs), pairs
safe_save({a: converted[b] for a, b in pairs}, f"{folder}/model.pth")
"""


@dataclass
class Run:
    """One timed subprocess and the label map it wrote."""

    labels: str
    command: list[str]
    wall_s: float
    cpu_s: float
    peak_mb: float


def timed(command: list[str], log: Path, labels: Path) -> Run:
    """Run ``command`` (output to ``log``); raise with the log's tail if it fails."""
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log.read_text().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(command)} failed:\n" + "\n".join(tail))
    cpu = usage.ru_utime + usage.ru_stime
    return Run(str(labels), command, wall, cpu, usage.ru_maxrss / 1024)


# ---- brainchop's side ---------------------------------------------------------------------


def brainchop_venv(venv: Path) -> Path:
    """The bin folder of a virtualenv holding brainchop 0.2.5 (made if missing)."""
    if not (venv / "bin" / "brainchop").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", BRAINCHOP], check=True)
    if not LISTING.exists():
        LISTING.parent.mkdir(parents=True, exist_ok=True)
        LISTING.write_text("{}\n")
    return venv / "bin"


def cli_config(tfjs: dict, path: Path) -> None:
    """Write brainchop CLI's layer config (its ``model.json``) for a Keras MeshNet topology."""
    layers = tfjs["modelTopology"]["model_config"]["config"]["layers"]
    convs = [layer["config"] for layer in layers if layer["class_name"] == "Conv3D"]
    activations = {layer["config"].get("activation") for layer in layers} - {"linear", None}
    norms = {conv["name"].endswith("_gn") for conv in convs[:-1]}
    if len(activations) != 1 or len(norms) != 1 or activations - {"relu", "elu", "gelu"}:
        raise ValueError(f"{path}: brainchop's CLI has one activation and norm for all layers")
    config = {"dropout_p": 0.0, "bnorm": norms.pop(), "layers": []}
    config[activations.pop()] = True
    channels = 1
    for conv in convs:
        size, dilation = conv["kernel_size"][0], conv["dilation_rate"][0]
        config["layers"].append(
            {
                "in_channels": channels,
                "out_channels": conv["filters"],
                "kernel_size": size,
                "padding": (size - 1) * dilation // 2,
                "stride": 1,
                "dilation": dilation,
                "bias": conv["use_bias"],
            }
        )
        channels = conv["filters"]
    path.write_text(json.dumps(config, indent=1))


def brainchop_model(model_dir: Path, folder: Path, bin_dir: Path) -> Path:
    """Convert a TF.js folder with brainchop's converter into ``folder`` (for ``-m``)."""
    folder.mkdir(parents=True, exist_ok=True)
    tfjs = json.loads((model_dir / "model.json").read_text())
    cli_config(tfjs, folder / "model.json")
    with tempfile.TemporaryDirectory() as tmp:
        with open(Path(tmp) / "model.bin", "wb") as weights:
            for group in tfjs["weightsManifest"]:
                for shard in group["paths"]:
                    weights.write((model_dir / shard).read_bytes())
        command = [str(bin_dir / "python"), "-c", CONVERT, str(model_dir / "model.json")]
        subprocess.run(command + [str(Path(tmp) / "model.bin"), str(folder)], check=True)
    return folder


def niimath_conform(t1: Path, out: Path, bin_dir: Path) -> Path:
    """``out``: the T1 conformed by niimath exactly as brainchop's CLI asks (stdout, uint8)."""
    command = [str(bin_dir / "niimath"), str(t1), "-conform", "-gz", "0", "-", "-odt", "char"]
    out.write_bytes(subprocess.run(command, capture_output=True, check=True).stdout)
    return out


def brainchop_labels(model: Path, t1: Path, out: Path, bin_dir: Path) -> Run:
    """brainchop's CLI on ``t1`` with the converted ``model``; labels on its conformed grid."""
    environment = f"PATH={bin_dir}:{os.environ['PATH']}"  # its niimath
    command = ["env", environment, str(bin_dir / "brainchop"), str(t1), "-m", str(model)]
    command += ["-o", str(out / "brainchop.nii.gz"), "--no-optimize"]
    return timed(command, out / "brainchop.log", out / "brainchop.nii.gz")


# ---- meshseg's side -----------------------------------------------------------------------


def meshseg_labels(model_dir: Path, t1: Path, out: Path, settings: list[str]) -> Run:
    """meshseg's import of ``model_dir`` (once), then one whole-volume segmentation of ``t1``
    into ``out/meshseg_<t1 name>``; ``settings`` are more ``meshseg segment`` options."""
    meshseg = [sys.executable, "-m", "meshseg.cli"]
    checkpoint = out / "meshseg.pt"
    if not checkpoint.exists():
        command = meshseg + ["import", "brainchop", str(model_dir), "-o", str(checkpoint)]
        subprocess.run(command, check=True, capture_output=True)
        # the CLI's preprocessing, which it applies to every folder (a meshseg export records
        # its own min-max, which the import would keep)
        state = load_checkpoint(checkpoint)
        save_checkpoint({**state, "preprocess": BRAINCHOP_PREPROCESS}, checkpoint)
    subject = t1.name.removesuffix(".gz").removesuffix(".nii")
    folder = out / f"meshseg_{subject}"
    command = meshseg + ["segment", str(t1), "--model", str(checkpoint), "-o", str(folder)]
    command += ["--mode", "whole", *settings]
    return timed(command, out / f"{folder.name}.log", folder / subject / "labels_conformed.nii.gz")


def check_untouched(run: Run, conformed: Path) -> None:
    """Raise unless meshseg's conform left the niimath-conformed volume as it was."""
    ours = nib.load(Path(run.labels).with_name("t1_conformed.nii.gz"))
    theirs = nib.load(conformed)
    if not np.array_equal(np.asarray(ours.dataobj), np.asarray(theirs.dataobj)):
        raise RuntimeError(f"meshseg's conform changed {conformed}: the rows would not compare")


# ---- comparison ---------------------------------------------------------------------------


def same_grid(path: str | Path, reference: Path) -> bool:
    """Whether the images at ``path`` and ``reference`` share shape and affine."""
    image, grid = nib.load(path), nib.load(reference)
    return image.shape == grid.shape and np.allclose(image.affine, grid.affine, atol=1e-3)


def on_grid(labels_path: str, reference: Path) -> np.ndarray:
    """The labels of ``labels_path`` on ``reference``'s grid (nearest, only if they differ)."""
    labels, grid = nib.load(labels_path), nib.load(reference)
    data = np.asarray(labels.dataobj).astype(np.int64)
    if same_grid(labels_path, reference):
        return data
    return resample_nearest(data, labels.affine, grid.shape, grid.affine).astype(np.int64)


def cpu_line() -> str:
    """The CPU's model, its vector ISA and whether PyTorch has native bf16 kernels on it."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if "model name" in line),
        platform.processor(),
    )
    flags = set(info.split())
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    bf16 = "yes" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "no"
    return f"{model}, {os.cpu_count()} cores, {' '.join(isa) or 'no AVX2'}, native bf16 {bf16}"


def row(name: str, run: Run, reference: Run | None, dice: np.ndarray, same: float) -> str:
    """One table row: agreement and Dice with the reference labels, time, memory, speed-up."""
    scored = dice[~np.isnan(dice)]
    speedup = f"{reference.wall_s / run.wall_s:.1f}x" if reference else "-"
    return (
        f"| {name} | {100 * same:.4f} | {scored.min():.4f} | {scored.mean():.4f} "
        f"| {run.wall_s:.1f} | {run.cpu_s:.1f} | {run.peak_mb:.0f} | {speedup} |"
    )


def compare(model_dir: Path, runs: dict[str, Run], reference: str, out: Path) -> list[str]:
    """Table rows of every run against ``runs[reference]``; per-class Dice into dice.tsv."""
    conformed = out.parent / "t1_niimath.nii"
    truth = on_grid(runs[reference].labels, conformed)
    rows, table = [], {}
    for name, run in runs.items():
        labels = on_grid(run.labels, conformed)
        n = int(max(truth.max(), labels.max())) + 1
        table[name] = dice_per_class(truth, labels, n)
        timing = runs.get("brainchop CLI")
        rows.append(
            row(f"{model_dir.name} | {name}", run, timing, table[name], (labels == truth).mean())
        )
    width = max(len(d) for d in table.values())
    padded = {k: np.pad(v, (0, width - len(v)), constant_values=np.nan) for k, v in table.items()}
    pd.DataFrame({"class": range(width), **padded}).to_csv(out / "dice.tsv", sep="\t", index=False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="+", type=Path, help="MODEL_DIR [MODEL_DIR ...] T1")
    parser.add_argument("--venv", type=Path, default=Path(".bcvenv"))
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/brainchop"))
    parser.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--reuse", action="store_true", help="brainchop's earlier labels in OUT")
    parser.add_argument("--meshseg-only", action="store_true", help="skip brainchop's CLI")
    args = parser.parse_args()
    *model_dirs, t1 = args.paths
    if not args.meshseg_only and not args.reuse and shutil.which("clang") is None:
        parser.error("brainchop's CLI (tinygrad's CPU backend) needs clang on PATH")
    bin_dir = brainchop_venv(args.venv.absolute())
    args.out.mkdir(parents=True, exist_ok=True)
    conformed = niimath_conform(t1, args.out / "t1_niimath.nii", bin_dir)
    settings = ["--precision", args.precision, "--threads", str(args.threads)]
    print(f"CPU: {cpu_line()}\nT1: {t1}; niimath-conformed: {conformed}")
    print(f"meshseg: {' '.join(settings)}; reference: ", end="")
    print("meshseg on the niimath input" if args.meshseg_only else "brainchop 0.2.5's CLI", "\n")
    print(
        "| model | labels | agreement % | min Dice | mean Dice | wall s | CPU s | peak MB "
        "| brainchop wall / wall |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for model_dir in model_dirs:
        out = args.out / model_dir.name
        out.mkdir(exist_ok=True)
        runs, saved = {}, out / "brainchop.json"
        if args.reuse and saved.exists():
            runs["brainchop CLI"] = Run(**json.loads(saved.read_text()))
        elif not args.meshseg_only:
            model = brainchop_model(model_dir, out / "brainchop_model", bin_dir)
            runs["brainchop CLI"] = brainchop_labels(model, t1.absolute(), out.absolute(), bin_dir)
            saved.write_text(json.dumps(asdict(runs["brainchop CLI"]), indent=1))
        if "brainchop CLI" in runs and not same_grid(runs["brainchop CLI"].labels, conformed):
            raise RuntimeError(f"{runs['brainchop CLI'].labels} is not on the grid of {conformed}")
        runs["meshseg, niimath input"] = meshseg_labels(model_dir, conformed, out, settings)
        check_untouched(runs["meshseg, niimath input"], conformed)
        runs["meshseg, meshseg conform"] = meshseg_labels(model_dir, t1, out, settings)
        reference = next(iter(runs))
        for line in compare(model_dir, runs, reference, out):
            print(line, flush=True)


if __name__ == "__main__":
    main()
