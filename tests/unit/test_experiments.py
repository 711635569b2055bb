import numpy as np
import pandas as pd
import pytest
import torch

from meshseg.labels import load_labelset
from meshseg.metrics import dice_per_class, foreground_dice
from meshseg.nn.checkpoint import model_from_checkpoint, save_checkpoint
from meshseg.nn.inference import InferenceConfig, predict_volume
from meshseg.nn.models import build_model, model_config
from meshseg.nn.subvolumes import inference_locations
from meshseg.report.experiments import COLUMNS, dice_vs_subvolumes

PATCH = 16  # a 48^3 volume: 27 grid crops


def checkpoint(tmp_path, arch):
    torch.manual_seed(0)
    spec = model_config(arch, 3, width=2)
    path = tmp_path / f"{arch}.pt"
    save_checkpoint({"model": build_model(spec).state_dict(), "model_config": spec,
                     "labelset": load_labelset("demo_gwm").to_dict(), "step": 1}, path)
    return path


@pytest.mark.parametrize("arch", ["meshnet", "unet"])
def test_dice_against_subvolume_count(tmp_path, prepared_pair, arch):
    image_path, label_path, image, labels = prepared_pair
    config = InferenceConfig(sd=8.0, batch_size=8, precision="fp32", channels_last=False)
    out = tmp_path / "experiment.tsv"
    table = dice_vs_subvolumes(checkpoint(tmp_path, arch), image_path, label_path, [10, 27, 40], config,
                               "s1", arch, out, patch=PATCH)
    assert list(table.columns) == COLUMNS
    assert table["n_subvolumes"].tolist() == ([27, 40, 0] if arch == "meshnet" else [27, 40])
    assert table["inference"].tolist()[-1] == ("whole" if arch == "meshnet" else "vote")
    assert pd.read_csv(out, sep="\t")["foreground_dice"].tolist() == pytest.approx(table["foreground_dice"].tolist(), rel=1e-5)
    # the N = 40 row is exactly the vote that inference itself gives over those 40 crops
    model = model_from_checkpoint(tmp_path / f"{arch}.pt")[0]
    locations = inference_locations(40, 48, PATCH, 8.0, np.random.default_rng(0))
    classes = predict_volume(model, image, locations, PATCH, 3, 8, torch.device("cpu"), None, False)
    dice = dice_per_class(labels, classes, 3)
    assert table.loc[1, "foreground_dice"] == pytest.approx(foreground_dice(dice))
    assert table["classes_in_truth"].tolist() == [np.count_nonzero(np.bincount(labels.ravel()))] * len(table)
