import numpy as np
import pandas as pd
import pytest
import torch

from meshseg.labels import load_labelset
from meshseg.metrics import dice_per_class, foreground_dice
from meshseg.nn.checkpoint import load, save_checkpoint
from meshseg.nn.inference import InferenceConfig, predict_volume
from meshseg.nn.models import build_model, model_config
from meshseg.nn.runtime import Compute
from meshseg.nn.subvolumes import inference_locations
from meshseg.report.experiments import COLUMNS, dice_vs_subvolumes, write_experiment

PATCH = 16  # a 48^3 volume: 27 grid crops


def checkpoint(tmp_path, arch):
    torch.manual_seed(0)
    spec = model_config(arch, 3, width=2)
    path = tmp_path / f"{arch}.pt"
    save_checkpoint(
        {
            "model": build_model(spec).state_dict(),
            "model_config": spec,
            "labelset": load_labelset("demo_gwm").to_dict(),
            "step": 1,
            "train_config": {"patch": PATCH},
        },
        path,
    )
    return path


@pytest.mark.parametrize("arch", ["meshnet", "unet"])
def test_dice_against_subvolume_count(tmp_path, prepared_pair, arch):
    image_path, label_path, image, labels = prepared_pair
    config = InferenceConfig(
        sd=8.0, batch_size=8, precision="fp32", channels_last=False, device="cpu"
    )
    compute = Compute.from_config(config)
    out = tmp_path / "experiment.tsv"
    rows = dice_vs_subvolumes(
        load(checkpoint(tmp_path, arch)), image_path, label_path, [10, 27, 40], config, compute
    )
    table = write_experiment(rows, "s1", arch, out)
    assert (
        list(table.columns) == COLUMNS
        and set(table["subject"]) == {"s1"}
        and set(table["model"]) == {arch}
    )
    assert table["n_subvolumes"].tolist() == ([27, 40, 0] if arch == "meshnet" else [27, 40])
    assert table["inference"].tolist()[-1] == ("whole" if arch == "meshnet" else "vote")
    assert pd.read_csv(out, sep="\t")["foreground_dice"].tolist() == pytest.approx(
        table["foreground_dice"].tolist(), rel=1e-5
    )
    # the N = 40 row is exactly the vote that inference itself gives over those 40 crops
    loaded = load(tmp_path / f"{arch}.pt")
    locations = inference_locations(40, 48, PATCH, 8.0, np.random.default_rng(0))
    classes = predict_volume(loaded, image, locations, 8, compute)
    dice = dice_per_class(labels, classes, 3)
    assert table.loc[1, "foreground_dice"] == pytest.approx(foreground_dice(dice))
    assert table["classes_in_truth"].tolist() == [
        np.count_nonzero(np.bincount(labels.ravel()))
    ] * len(table)
