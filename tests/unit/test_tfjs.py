"""TF.js layers models in and out of meshseg (meshseg.nn.tfjs), on small models made here.

The reference is written from TF.js's own definitions, in numpy and channels-last: a "same"
Conv3D sums ``x[d + (i - 1) * dilation, ...] @ K[i, j, k]`` over the 3^3 offsets, with
``K`` of shape ``(kD, kH, kW, in, out)``; ``_gn`` layers are followed by an instance
normalisation (mean, biased variance over D, H, W; eps 1e-5); quantized weights are
``q * scale + min``.
"""

import json
import math
from importlib import resources

import numpy as np
import pytest
import torch

from meshseg.labels import load_labelset
from meshseg.nn.checkpoint import load, load_checkpoint, save_checkpoint
from meshseg.nn.models import build_model, model_config
from meshseg.nn.tfjs import BRAINCHOP_PREPROCESS, export_tfjs, import_brainchop
from tests.conftest import everything_in, fails_cleanly, tiny_checkpoint

ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
}


def keras_layer(class_name, name, **config):
    return {"class_name": class_name, "config": {"name": name, **config}, "name": name}


def conv_layer(name, filters, kernel=3, dilation=1, bias=True, activation="linear", **extra):
    return keras_layer(
        "Conv3D",
        name,
        filters=filters,
        kernel_size=[kernel] * 3,
        dilation_rate=[dilation] * 3,
        strides=[1, 1, 1],
        padding="same",
        data_format="channels_last",
        use_bias=bias,
        activation=activation,
        **extra,
    )


def write_model(folder, layers, weights, shards=1, quantize=None):
    """Write ``model.json`` and its shards; ``weights`` is a list of (name, float32 array).

    ``quantize`` maps weight names to ``uint8``, ``uint16`` or ``float16``. Returns the values
    a reader must find: the dequantized ones for quantized weights."""
    folder.mkdir(parents=True, exist_ok=True)
    quantize, manifest, blobs, values = quantize or {}, [], [], {}
    for name, w in weights:
        entry = {"name": name, "shape": list(w.shape), "dtype": "float32"}
        kind = quantize.get(name)
        if kind == "float16":
            stored = w.astype("<f2")
            values[name] = stored.astype(np.float32)
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
        elif kind:
            low, top = float(w.min()), np.iinfo(kind).max
            scale = (float(w.max()) - low) / top
            stored = np.round((w - low) / scale).astype("<" + np.dtype(kind).str[1:])
            values[name] = (stored * scale + low).astype(np.float32)
            entry["quantization"] = {"dtype": kind, "scale": scale, "min": low}
        else:
            stored, values[name] = w.astype("<f4"), w
        manifest.append(entry)
        blobs.append(stored.tobytes())
    data = b"".join(blobs)
    cuts = np.linspace(0, len(data), shards + 1).astype(int)
    paths = [f"group1-shard{i + 1}of{shards}.bin" for i in range(shards)]
    for path, a, b in zip(paths, cuts, cuts[1:]):
        (folder / path).write_bytes(data[a:b])
    spec = {
        "format": "layers-model",
        "modelTopology": {
            "model_config": {"class_name": "Functional", "config": {"layers": layers}}
        },
        "weightsManifest": [{"paths": paths, "weights": manifest}],
    }
    (folder / "model.json").write_text(json.dumps(spec))
    return values


def random_model(folder, activation="relu", gn=False, shards=1, quantize=None, seed=0):
    """A brainchop-like MeshNet of 3 hidden layers (4, 4, 5 channels), 3 classes."""
    rng = np.random.default_rng(seed)
    layers = [keras_layer("InputLayer", "input", batch_input_shape=[None, 16, 16, 16, 1])]
    weights, c_in = [], 1
    for i, (width, dilation) in enumerate([(4, 1), (4, 2), (5, 1)]):
        name = f"conv3d_{i}" + ("_gn" if gn else "")
        layers.append(conv_layer(name, width, dilation=dilation, bias=not gn))
        layers.append(keras_layer("Activation", f"act_{i}", activation=activation))
        weights.append((f"{name}/kernel", rng.normal(0, 0.5, (3, 3, 3, c_in, width))))
        if not gn:
            weights.append((f"{name}/bias", rng.normal(0, 0.1, width)))
        c_in = width
    layers.append(conv_layer("output", 3, kernel=1))
    weights += [
        ("output/kernel", rng.normal(0, 0.5, (1, 1, 1, c_in, 3))),
        ("output/bias", [0.1, 0, -0.1]),
    ]
    weights = [(n, np.asarray(w, np.float32)) for n, w in weights]
    return write_model(folder, layers, weights, shards, quantize)


def tf_conv(x, kernel, bias, dilation):
    """Keras Conv3D, padding "same", channels-last ``x`` (D, H, W, C)."""
    k = kernel.shape[0]
    pad = (k - 1) // 2 * dilation
    padded = np.pad(x, [(pad, pad)] * 3 + [(0, 0)])
    d, h, w = x.shape[:3]
    out = np.zeros((d, h, w, kernel.shape[-1]), np.float64)
    for i, j, m in np.ndindex(k, k, k):
        a, b, c = i * dilation, j * dilation, m * dilation
        out += padded[a : a + d, b : b + h, c : c + w] @ kernel[i, j, m]
    return out + (0 if bias is None else bias)


def reference_logits(folder, values, image):
    """Logits (D, H, W, classes) of the TF.js model in ``folder`` on ``image`` (D, H, W)."""
    layers = json.loads((folder / "model.json").read_text())["modelTopology"]["model_config"]
    x = image[..., None].astype(np.float64)
    for layer in layers["config"]["layers"][1:]:
        c = layer["config"]
        if layer["class_name"] == "Activation":
            x = ACTIVATIONS[c["activation"]](x)
            continue
        x = tf_conv(
            x, values[f"{c['name']}/kernel"], values.get(f"{c['name']}/bias"), c["dilation_rate"][0]
        )
        if c["name"].endswith("_gn"):
            x = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + 1e-5)
        x = ACTIVATIONS.get(c["activation"], lambda v: v)(x)
    return x


def meshseg_logits(checkpoint, image):
    with torch.inference_mode():
        logits = load(checkpoint).model(torch.from_numpy(image)[None, None])
    return logits[0].permute(1, 2, 3, 0).double().numpy()


IMAGE = np.random.default_rng(1).random((10, 12, 9), dtype=np.float32)


@pytest.mark.parametrize(
    "options",
    [
        {"activation": "relu"},
        {"activation": "elu"},
        {"activation": "gelu", "gn": True},
        {"quantize": {"conv3d_1/kernel": "uint8", "conv3d_0/kernel": "uint16"}, "shards": 2},
        {"quantize": {"conv3d_2/kernel": "float16", "output/bias": "uint8"}, "shards": 3},
    ],
)
def test_import_gives_the_logits_of_the_tfjs_definition(tmp_path, options):
    values = random_model(tmp_path / "model", **options)
    checkpoint = import_brainchop(tmp_path / "model", tmp_path / "model.pt")
    expected = reference_logits(tmp_path / "model", values, IMAGE)
    np.testing.assert_allclose(meshseg_logits(checkpoint, IMAGE), expected, rtol=1e-4, atol=1e-4)
    loaded = load(checkpoint)
    assert loaded.preprocess == BRAINCHOP_PREPROCESS
    assert loaded.spec["channels"] == [4, 4, 5] and tuple(loaded.spec["dilations"]) == (1, 2, 1)
    assert loaded.model.has_instance_norm == bool(options.get("gn"))


def test_an_activation_in_the_conv_layer_itself_is_read(tmp_path):
    values = random_model(tmp_path / "a")
    spec = json.loads((tmp_path / "a" / "model.json").read_text())
    layers = spec["modelTopology"]["model_config"]["config"]["layers"]
    for conv, activation in zip(layers[1:-1:2], layers[2:-1:2]):
        conv["config"]["activation"] = activation["config"]["activation"]
    spec["modelTopology"]["model_config"]["config"]["layers"] = [
        layer for layer in layers if layer["class_name"] != "Activation"
    ]
    (tmp_path / "a" / "model.json").write_text(json.dumps(spec))
    checkpoint = import_brainchop(tmp_path / "a", tmp_path / "a.pt")
    expected = reference_logits(tmp_path / "a", values, IMAGE)
    np.testing.assert_allclose(meshseg_logits(checkpoint, IMAGE), expected, rtol=1e-4, atol=1e-4)


def test_export_then_import_is_exact(tmp_path):
    random_model(tmp_path / "model", activation="gelu", gn=True)
    first = load(import_brainchop(tmp_path / "model", tmp_path / "first.pt"))
    export_tfjs(first, tmp_path / "exported")
    assert everything_in(tmp_path / "exported") == [
        "colormap.json",
        "group1-shard1of1.bin",
        "labels.json",
        "model.json",
    ]
    second = load(import_brainchop(tmp_path / "exported", tmp_path / "second.pt"))
    a, b = first.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (second.spec, second.labelset, second.preprocess) == (
        first.spec,
        first.labelset,
        first.preprocess,
    )
    export_tfjs(second, tmp_path / "again")
    for name in ("model.json", "group1-shard1of1.bin"):
        assert (tmp_path / "again" / name).read_bytes() == (
            tmp_path / "exported" / name
        ).read_bytes()


def with_batchnorm_statistics(path):
    """Give a checkpoint's BatchNorm layers non-trivial statistics, so folding them matters."""
    state = load_checkpoint(path)
    generator = torch.Generator().manual_seed(0)
    for key, value in state["model"].items():
        if key.endswith(("running_mean", "bias")):
            value.copy_(torch.rand(value.shape, generator=generator) - 0.5)
        elif key.endswith(("running_var", "1.weight")):
            value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
    save_checkpoint(state, path)
    return path


def test_a_meshseg_model_exports_to_the_tfjs_definition_and_back(tmp_path):
    checkpoint = with_batchnorm_statistics(
        tiny_checkpoint(tmp_path / "ours.pt", overrides={"channels": 4})
    )
    ours = load(checkpoint)
    export_tfjs(ours, tmp_path / "tfjs")
    colormap = json.loads((tmp_path / "tfjs" / "colormap.json").read_text())
    assert colormap["labels"] == ours.labelset.names
    assert json.loads((tmp_path / "tfjs" / "labels.json").read_text()) == {
        str(i): name for i, name in enumerate(ours.labelset.names)
    }
    spec = json.loads((tmp_path / "tfjs" / "model.json").read_text())
    manifest = spec["weightsManifest"][0]
    data = (tmp_path / "tfjs" / manifest["paths"][0]).read_bytes()
    values, offset = {}, 0
    for entry in manifest["weights"]:
        count = int(np.prod(entry["shape"]))
        values[entry["name"]] = np.frombuffer(data, "<f4", count, offset).reshape(entry["shape"])
        offset += 4 * count
    image = np.random.default_rng(2).random((20, 16, 18), dtype=np.float32)
    expected = meshseg_logits(checkpoint, image)
    np.testing.assert_allclose(
        reference_logits(tmp_path / "tfjs", values, image), expected, rtol=1e-4, atol=1e-4
    )
    back = load(import_brainchop(tmp_path / "tfjs", tmp_path / "back.pt"))
    assert (back.labelset, back.preprocess) == (ours.labelset, ours.preprocess)
    assert (meshseg_logits(back.path, image).argmax(-1) == expected.argmax(-1)).mean() >= 0.9999


def edit_layer(folder, index, **config):
    """Change layer ``index`` of ``folder/model.json``: its config keys, or its class."""
    path = folder / "model.json"
    spec = json.loads(path.read_text())
    layer = spec["modelTopology"]["model_config"]["config"]["layers"][index]
    layer["class_name"] = config.pop("class_name", layer["class_name"])
    layer["config"].update(config)
    path.write_text(json.dumps(spec))


def edit_weight(folder, index, **entry):
    path = folder / "model.json"
    spec = json.loads(path.read_text())
    spec["weightsManifest"][0]["weights"][index].update(entry)
    path.write_text(json.dumps(spec))


@pytest.mark.parametrize(
    "edit, layer, problem",
    [
        (
            lambda f: edit_layer(f, 3, class_name="MaxPooling3D"),
            "conv3d_1",
            "unsupported layer MaxPooling3D",
        ),
        (
            lambda f: edit_layer(f, 3, strides=[2, 2, 2]),
            "conv3d_1",
            "strides [2, 2, 2] is not supported",
        ),
        (lambda f: edit_layer(f, 3, kernel_size=[5, 5, 5]), "conv3d_1", "kernel [5, 5, 5]"),
        (lambda f: edit_layer(f, 4, activation="sigmoid"), "conv3d_1", "activation 'sigmoid'"),
        (lambda f: edit_layer(f, 7, kernel_size=[3, 3, 3]), "output", "the last layer must be"),
        (lambda f: edit_layer(f, 0, batch_input_shape=[None, 8, 8, 8, 2]), "input", "one channel"),
        (
            lambda f: edit_weight(f, 2, shape=[3, 3, 3, 2, 8]),
            "conv3d_1",
            "has shape [3, 3, 3, 2, 8], expected [3, 3, 3, 4, 4]",
        ),
        (
            lambda f: edit_weight(f, 2, shape=[3, 3, 3, 4, 5]),
            None,
            "weight 'conv3d_2/kernel': the shards end before it does",
        ),
        (lambda f: edit_layer(f, 3, use_bias=False), "conv3d_1", "a use_bias other than the"),
        (lambda f: edit_weight(f, 0, shape=None), None, "not a TF.js layers model (TypeError"),
        (lambda f: edit_weight(f, 0, dtype="int32"), None, "dtype int32 is not supported"),
        (lambda f: edit_weight(f, 0, quantization={"dtype": "int8"}), None, "dtype int8"),
        (
            lambda f: (f / "group1-shard2of2.bin").unlink(),
            None,
            "weight shard group1-shard2of2.bin",
        ),
        (
            lambda f: edit_weight(f, 0, name="conv3d_0/weights"),
            "conv3d_0",
            "no weight conv3d_0/kernel",
        ),
    ],
)
def test_unsupported_models_fail_in_one_line_naming_the_file_and_layer(
    tmp_path, edit, layer, problem
):
    random_model(tmp_path / "model", shards=2)
    edit(tmp_path / "model")
    message = fails_cleanly(
        lambda: import_brainchop(tmp_path / "model", tmp_path / "out" / "model.pt"),
        tmp_path / "model" / "model.json",
        problem,
        tmp_path / "out",
        error=ValueError,
    )
    assert (f"layer {layer!r}" in message) == (layer is not None), message


def test_labels_come_from_the_folder_or_the_user(tmp_path):
    folder = tmp_path / "model"
    random_model(folder)
    (folder / "colormap.json").write_text(
        json.dumps({"R": [0, 255], "G": [0, 0], "B": [0, 0], "labels": ["background", "brain"]})
    )
    (folder / "colormap3.json").write_text(
        json.dumps(
            {"R": [0, 1, 2], "G": [3, 4, 5], "B": [6, 7, 8], "labels": ["bg", "White Matter", "GM"]}
        )
    )
    found = load(import_brainchop(folder, tmp_path / "a.pt")).labelset
    assert found.names == ["bg", "White-Matter", "GM"]  # the file with 3 classes; no spaces
    assert [c.rgb for c in found.classes] == [(0, 3, 6), (1, 4, 7), (2, 5, 8)]
    assert [c.id for c in found.classes] == [0, 1, 2]
    assert load_labelset(tmp_path / "a.tsv").classes == found.classes  # for the workflow

    (tmp_path / "labels.json").write_text(json.dumps({"0": "a", "1": "b", "2": "c"}))
    (tmp_path / "colorLUT.json").write_text(json.dumps({"0": "rgb(0,0,0)", "1": "rgb(9,8,7)"}))
    given = load(import_brainchop(folder, tmp_path / "b.pt", tmp_path / "labels.json")).labelset
    assert given.names == ["a", "b", "c"] and given.classes[1].rgb == (9, 8, 7)

    tsv = load(
        import_brainchop(
            folder, tmp_path / "c.pt", resources.files("meshseg") / "labelsets" / "demo_gwm.tsv"
        )
    )
    assert tsv.labelset == load_labelset("demo_gwm")
    with pytest.raises(ValueError, match=r"colormap\.json: 2 classes, but the network predicts 3"):
        import_brainchop(folder, tmp_path / "d.pt", folder / "colormap.json")


def test_export_refuses_what_tfjs_cannot_hold(tmp_path):
    unet = load(tiny_checkpoint(tmp_path / "unet.pt", arch="unet", width=2))
    with pytest.raises(ValueError, match=r"unet\.pt: TF.js export needs a MeshNet, not unet"):
        export_tfjs(unet, tmp_path / "out")
    spec = {**model_config("meshnet", 3), "activation": "gelu", "channels": 2}
    torch.manual_seed(0)
    state = {"model": build_model(spec).state_dict(), "model_config": spec, "step": 0}
    save_checkpoint({**state, "labelset": load_labelset("demo_gwm").to_dict()}, tmp_path / "g.pt")
    with pytest.raises(ValueError, match=r"g\.pt: activation 'gelu' has no TF.js equivalent"):
        export_tfjs(load(tmp_path / "g.pt"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
