import pytest
import torch

from meshseg.nn.models import (
    build_model,
    count_parameters,
    describe_model,
    model_config,
    model_variant,
    require_fully_convolutional,
)

# docs/references.md, MeshNet: parameter counts (weights, biases, BatchNorm affine).
EXPECTED = {
    ("meshnet", "small"): {3: 72_516, 31: 73_132, 104: 74_738},
    ("meshnet", "large"): {3: 820_266, 31: 822_282, 104: 827_538},
    ("unet", None): {3: 25_115_139, 31: 25_116_959, 104: 25_121_704},
}


@pytest.mark.parametrize("n_classes", [3, 31, 104])
@pytest.mark.parametrize("arch,variant", list(EXPECTED))
def test_parameter_counts_match_the_reference(arch, variant, n_classes):
    spec = model_config(arch, n_classes, variant=variant or "small", width=64)
    assert count_parameters(build_model(spec)) == EXPECTED[(arch, variant)][n_classes]


@pytest.mark.parametrize(
    "spec",
    [
        model_config("meshnet", 3),
        model_config("meshnet", 3, dropout=0.2),
        model_config("unet", 3, width=4),
    ],
)
@pytest.mark.parametrize("size", [38, 21])
def test_output_shape_and_one_training_step(spec, size):
    torch.manual_seed(0)
    model = build_model(spec)
    x = torch.rand(2, 1, size, size, size)
    logits = model(x)
    assert logits.shape == (2, 3, size, size, size)
    loss = torch.nn.functional.cross_entropy(
        logits, torch.zeros(2, size, size, size, dtype=torch.long)
    )
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_dropout_variant_has_dropout_layers():
    model = build_model(model_config("meshnet", 3, dropout=0.25))
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout3d)}
    assert rates == {0.25}


def test_spec_round_trip_and_unknown_arch():
    spec = model_config("meshnet", 5, variant="large")
    assert spec["channels"] == 71 and spec["dilations"] == (1, 1, 2, 4, 8, 16, 1)
    with pytest.raises(ValueError, match="unknown architecture"):
        model_config("resnet", 3)
    with pytest.raises(ValueError, match="unknown MeshNet variant"):
        model_config("meshnet", 3, variant="huge")


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"arch": "meshnet", "variant": "large"}, "MeshNet large"),
        ({"arch": "meshnet", "dropout": 0.1}, "MeshNet small, dropout 0.1"),
        ({"arch": "unet", "width": 16}, "U-Net width 16"),
        ({"arch": "unet"}, "U-Net width 64"),
        (model_config("meshnet", 3, variant="large", dropout=0.25), "MeshNet large, dropout 0.25"),
        (model_config("unet", 3, width=8), "U-Net width 8"),
        (
            {**model_config("meshnet", 3), "channels": 5},
            "MeshNet custom (5 channels, dilations [1, 1, 1, 2, 4, 8, 1])",
        ),
    ],
)
def test_describe_model_reads_config_entries_and_specs(spec, words):
    assert describe_model(spec) == words
    assert model_variant(spec) == words.split(" ", 1)[1].removeprefix("width ").join(
        ["width " if spec["arch"] == "unet" else "", ""]
    )


def test_describe_model_refuses_an_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        describe_model({"arch": "resnet"})


def test_only_meshnet_is_fully_convolutional():
    meshnet = build_model(model_config("meshnet", 3))
    assert require_fully_convolutional(meshnet) == meshnet.receptive_radius == 18
    with pytest.raises(
        ValueError, match="x needs a fully convolutional model \\(MeshNet\\), not UNet"
    ):
        require_fully_convolutional(build_model(model_config("unet", 3, width=2)), "x")


@pytest.mark.parametrize("variant,dropout", [("small", 0.0), ("large", 0.0), ("small", 0.25)])
def test_meshseg_meshnets_keep_their_state_dict_keys_and_old_specs_build(variant, dropout):
    """Checkpoints written before the general MeshNet (specs without activation, norm and
    bias) still build and load: the same layers under the same keys."""
    spec = model_config("meshnet", 3, variant=variant, dropout=dropout)
    old = {k: v for k, v in spec.items() if k not in ("activation", "norm", "bias")}
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = [f"layers.{i}.{key}" for i in range(7) for key in ("0.weight", "0.bias")]
    keys += [f"layers.{i}.1.{key}" for i in range(7) for key in bn]
    keys += ["classifier.weight", "classifier.bias"]
    state = build_model(old).state_dict()
    assert sorted(state) == sorted(keys)
    build_model(spec).load_state_dict(state)


def test_a_general_meshnet_takes_widths_norms_activation_and_bias_per_config():
    spec = {
        **model_config("meshnet", 4),
        "channels": [3, 5, 2],
        "dilations": (1, 4, 2),
        "norm": ["instance", "none", "batch"],
        "activation": "elu",
        "bias": False,
    }
    model = build_model(spec)
    convs = [layer[0] for layer in model.layers]
    assert [(c.in_channels, c.out_channels, c.dilation[0]) for c in convs] == [
        (1, 3, 1),
        (3, 5, 4),
        (5, 2, 2),
    ]
    assert all(c.bias is None for c in convs) and model.classifier.in_channels == 2
    norms = [type(layer[1]).__name__ for layer in model.layers]
    assert norms == ["InstanceNorm3d", "Identity", "BatchNorm3d"]
    assert {type(layer[2]).__name__ for layer in model.layers} == {"ELU"}
    assert model.has_instance_norm and model.receptive_radius == 7
    assert model(torch.rand(1, 1, 9, 8, 7)).shape == (1, 4, 9, 8, 7)
    assert describe_model(spec) == (
        "MeshNet custom ([3, 5, 2] channels, dilations [1, 4, 2], activation elu, "
        "norm ['instance', 'none', 'batch'], no bias)"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"activation": "swish"}, "unknown MeshNet activation 'swish'"),
        ({"norm": ["batch", "group"]}, "MeshNet norm has 2 entries for 7 layers"),
        ({"norm": "group"}, r"unknown MeshNet norm \['group'\]"),
        ({"channels": [4, 4]}, "MeshNet channels has 2 entries for 7 layers"),
    ],
)
def test_a_meshnet_config_refuses_what_it_cannot_build(change, message):
    with pytest.raises(ValueError, match=message):
        build_model({**model_config("meshnet", 3), **change})
