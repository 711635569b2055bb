import pandas as pd
import torch

from meshseg.nn.models import build_model, model_config
from meshseg.nn.runtime import Compute
from meshseg.report.speed import (
    REFERENCE_COLUMNS,
    checkpoint_bytes,
    crops_per_second,
    measure_reference_speed,
)


def test_crops_per_second_and_weights_only_checkpoint():
    model = build_model(model_config("meshnet", 3))
    assert (
        crops_per_second(
            model, Compute(torch.device("cpu"), None, True), batch_size=2, patch=8, batches=1
        )
        > 0
    )
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert weights < checkpoint_bytes(model) < weights + 100_000


def test_measure_reference_speed_sizes_the_reference_models(tmp_path):
    compute = Compute.from_settings(device="cpu", precision="fp32")
    table = measure_reference_speed(
        "demo_gwm", tmp_path / "speed.tsv", compute, batches=1, batch_size=1, patch=16
    )
    assert list(table.columns) == REFERENCE_COLUMNS
    assert table["parameters"].tolist() == [
        72_516,
        820_266,
        25_115_139,
    ]  # docs/references.md: MeshNet
    assert table["description"].tolist() == ["MeshNet small", "MeshNet large", "U-Net width 64"]
    assert (table["subvolumes_per_second"] > 0).all() and (
        table["device"].str.startswith("cpu")
    ).all()
    assert (
        pd.read_csv(tmp_path / "speed.tsv", sep="\t")["model"].tolist() == table["model"].tolist()
    )
