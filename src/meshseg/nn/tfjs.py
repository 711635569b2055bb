"""TF.js layers models (brainchop's MeshNets) into meshseg checkpoints, and back.

A folder holds ``model.json``, a Keras ``modelTopology`` with a ``weightsManifest``, and the
weight shards it names; brainchop's web app adds the class names and colours
(``colormap.json``: ``{"R": [...], "G": [...], "B": [...], "labels": [...]}``; its older
version ``labels.json``: ``{"0": name, ...}`` with ``colorLUT.json``: ``{"0": "rgb(r,g,b)"}``).

The topology is a chain: an ``InputLayer`` of one channel, then ``Conv3D`` layers (3^3,
``padding: same``, stride 1, one dilation for all axes), each followed by its activation
(its ``activation`` field or a separate ``Activation`` layer); the last is a 1^3 ``Conv3D``
with one filter per class. A convolution whose name ends in ``_gn`` is followed by an
instance normalisation without weights (brainchop's ``LayerNormInPlace``). Keras ``gelu`` is
read as the tanh approximation, which brainchop's CLI computes. Weights follow the manifest
in order, each group's shards concatenated: float32 little-endian, or quantized as
tfjs-converter writes them (``uint8``/``uint16`` ``q * scale + min``, or ``float16``). TF
kernels are ``(kD, kH, kW, in, out)``, PyTorch's ``(out, in, kD, kH, kW)``.

An imported checkpoint records brainchop's CLI preprocessing (:data:`BRAINCHOP_PREPROCESS`).
An export writes ``model.json`` + ``group1-shard1of1.bin`` (BatchNorm folded, float32) and
both label files; ``model.json`` also carries meshseg's label set and preprocessing under
``_meshseg`` (brainchop ignores it), so that an export imports back as it was.
References: docs/references.md, brainchop and TF.js layers format.
"""

from __future__ import annotations

import colorsys
import json
import logging
import os
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval

from meshseg import __version__
from meshseg.image.io import atomic_path, write_text
from meshseg.labels import LabelClass, LabelSet, load_labelset
from meshseg.nn.checkpoint import LoadedModel, save_checkpoint
from meshseg.nn.models import build_model
from meshseg.nn.models.meshnet import MeshNetConfig

log = logging.getLogger(__name__)

# Keras activation -> MeshNetConfig.activation, and back
ACTIVATIONS = {"relu": "relu", "elu": "elu", "gelu": "gelu_tanh"}
KERAS_ACTIVATIONS = {ours: keras for keras, ours in ACTIVATIONS.items()}
QUANTIZED = {"uint8": "<u1", "uint16": "<u2", "float16": "<f2"}  # stored dtype of each
INSTANCE_SUFFIX = "_gn"
WEIGHTS_FILE = "group1-shard1of1.bin"
INPUT_SHAPE = [None, 256, 256, 256, 1]  # brainchop's; the web app resizes it to its crop
# What brainchop's CLI (0.2.5) does around the network: qnormalize, one pass, largest component.
BRAINCHOP_PREPROCESS = {
    "normalisation": {"name": "qnormalize", "low": 0.02, "high": 0.98},
    "largest_component": True,
    "inference": "whole",
}


def _error(path: Path, layer: str | None, problem: str) -> ValueError:
    where = f"{path}: layer {layer!r}: " if layer else f"{path}: "
    return ValueError(where + problem)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: not found") from None
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not readable JSON ({err})") from None


def _layers(spec: dict, path: Path) -> list[dict]:
    """The layer list of a Keras topology (Functional or Sequential)."""
    if spec.get("format", "layers-model") != "layers-model":
        raise _error(path, None, f"a TF.js {spec['format']}, not a layers model")
    topology = spec.get("modelTopology") or {}
    config = topology.get("model_config", topology).get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise _error(path, None, "no Keras modelTopology with a list of layers")
    return config["layers"]


def _conv(layer: dict, c_in: int, path: Path) -> dict:
    """One Conv3D's settings, checked: what :func:`_network` needs of it."""
    c, name = layer.get("config", {}), layer.get("config", {}).get("name")
    if layer.get("class_name") != "Conv3D":
        raise _error(path, name, f"unsupported layer {layer.get('class_name')} (expected Conv3D)")
    kernel, dilation = c.get("kernel_size", [3] * 3), c.get("dilation_rate", [1] * 3)
    checks = {
        "padding": (c.get("padding"), "same"),
        "strides": (list(c.get("strides", [1] * 3)), [1] * 3),
        "data_format": (c.get("data_format", "channels_last"), "channels_last"),
        "groups": (c.get("groups", 1), 1),
    }
    for key, (value, wanted) in checks.items():
        if value != wanted:
            raise _error(path, name, f"{key} {value!r} is not supported (only {wanted!r})")
    if len(set(kernel)) != 1 or kernel[0] not in (1, 3) or len(set(dilation)) != 1:
        raise _error(path, name, f"kernel {kernel} with dilation {dilation} is not supported")
    return {
        "name": name,
        "c_in": c_in,
        "filters": c["filters"],
        "kernel": kernel[0],
        "dilation": dilation[0],
        "bias": c.get("use_bias", True),
        "activation": c.get("activation", "linear"),
    }


def _network(layers: list[dict], path: Path) -> list[dict]:
    """The Conv3D layers of a MeshNet topology, each with the activation that follows it."""
    first = layers[0] if layers else {}
    shape = first.get("config", {}).get("batch_input_shape") or [None]
    if first.get("class_name") != "InputLayer" or shape[-1] != 1:
        name = first.get("config", {}).get("name")
        raise _error(path, name, "the first layer must be an InputLayer of one channel")
    convs: list[dict] = []
    for layer in layers[1:]:
        if layer.get("class_name") == "Activation" and convs:
            if convs[-1]["activation"] != "linear":
                raise _error(path, layer["config"].get("name"), "a second activation in a row")
            convs[-1]["activation"] = layer["config"].get("activation")
        else:
            convs.append(_conv(layer, convs[-1]["filters"] if convs else 1, path))
    if len(convs) < 2:
        raise _error(path, None, "a MeshNet needs hidden Conv3D layers and a classifier")
    *hidden, last = convs
    if last["kernel"] != 1 or last["activation"] != "linear" or _instance(last):
        raise _error(path, last["name"], "the last layer must be a linear 1x1x1 Conv3D")
    for conv in hidden:
        problem = _hidden_problem(conv, hidden[0])
        if problem:
            raise _error(path, conv["name"], f"{problem} is not supported")
    return convs


def _hidden_problem(conv: dict, first: dict) -> str | None:
    """What a hidden layer has that MeshNetConfig cannot express, if anything: all hidden
    layers are 3^3 with one activation (relu, elu or gelu) and one bias setting."""
    if conv["kernel"] != 3:
        return "a 1x1x1 hidden layer"
    if conv["activation"] not in ACTIVATIONS or conv["activation"] != first["activation"]:
        return f"activation {conv['activation']!r}"
    if conv["bias"] != first["bias"]:
        return "a use_bias other than the first layer's"
    return None


def _instance(conv: dict) -> bool:
    return conv["name"].endswith(INSTANCE_SUFFIX)


def _weights(folder: Path, manifest: list[dict], path: Path) -> dict[str, np.ndarray]:
    """Every weight of the manifest by name, dequantized to float32."""
    weights = {}
    for group in manifest:
        data = b""
        for shard in group["paths"]:
            try:
                data += (folder / shard).read_bytes()
            except OSError as err:
                raise _error(path, None, f"weight shard {shard} ({err.strerror})") from None
        offset = 0
        for entry in group["weights"]:
            weights[entry["name"]], offset = _decode(entry, data, offset, path)
        if offset != len(data):
            raise _error(
                path,
                None,
                f"the shards {group['paths']} hold {len(data)} bytes, "
                f"the manifest's weights {offset}",
            )
    return weights


def _decode(entry: dict, data: bytes, offset: int, path: Path) -> tuple[np.ndarray, int]:
    """One manifest entry's float32 values from ``data`` at ``offset``, and the next offset."""
    name, quantization = entry["name"], entry.get("quantization")
    stored = QUANTIZED.get(quantization["dtype"]) if quantization else "<f4"
    if entry.get("dtype", "float32") != "float32" or stored is None:
        dtype = quantization["dtype"] if quantization else entry.get("dtype")
        raise _error(path, None, f"weight {name!r}: dtype {dtype} is not supported")
    count = int(np.prod(entry["shape"]))
    end = offset + count * np.dtype(stored).itemsize
    if end > len(data):
        raise _error(path, None, f"weight {name!r}: the shards end before it does")
    values = np.frombuffer(data, stored, count, offset).reshape(entry["shape"])
    if stored in ("<u1", "<u2"):  # as tfjs: q * scale + min in double, stored as float32
        values = values * float(quantization["scale"]) + float(quantization["min"])
    return values.astype(np.float32), end


def _tensor(weights: dict, key: str, shape: tuple, path: Path) -> torch.Tensor:
    layer = key.rpartition("/")[0]
    if key not in weights:
        raise _error(path, layer, f"no weight {key} in the weightsManifest")
    if weights[key].shape != shape:
        raise _error(
            path,
            layer,
            f"weight {key} has shape {list(weights[key].shape)}, expected {list(shape)}",
        )
    value = weights[key]
    return torch.from_numpy(
        np.ascontiguousarray(value.transpose(4, 3, 0, 1, 2) if value.ndim == 5 else value)
    )


def read_tfjs(folder: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """A TF.js layers folder as a MeshNet: its model spec, state dict and ``model.json``."""
    path = Path(folder) / "model.json"
    spec = _read_json(path)
    try:
        convs = _network(_layers(spec, path), path)
        weights = _weights(Path(folder), spec.get("weightsManifest") or [], path)
    except (KeyError, TypeError, AttributeError, IndexError) as err:
        raise _error(
            path, None, f"not a TF.js layers model ({type(err).__name__}: {err})"
        ) from None
    *hidden, last = convs
    widths = [c["filters"] for c in hidden]
    norms = ["instance" if _instance(c) else "none" for c in hidden]
    config = MeshNetConfig(
        n_classes=last["filters"],
        channels=widths[0] if len(set(widths)) == 1 else widths,
        dilations=tuple(c["dilation"] for c in hidden),
        activation=ACTIVATIONS[hidden[0]["activation"]],
        norm=norms[0] if len(set(norms)) == 1 else norms,
        bias=hidden[0]["bias"],
    )
    state = {}
    for key, conv in zip([f"layers.{i}.0" for i in range(len(hidden))] + ["classifier"], convs):
        k = conv["kernel"]
        state[f"{key}.weight"] = _tensor(
            weights, f"{conv['name']}/kernel", (k, k, k, conv["c_in"], conv["filters"]), path
        )
        if conv["bias"]:
            state[f"{key}.bias"] = _tensor(
                weights, f"{conv['name']}/bias", (conv["filters"],), path
            )
    state.setdefault("classifier.bias", torch.zeros(last["filters"]))  # Keras use_bias false
    return {"arch": "meshnet", **asdict(config)}, state, spec


# ---- labels ------------------------------------------------------------------------------


def _colour(index: int) -> tuple[int, int, int]:
    """A distinct colour per class (black for 0): hues a golden angle apart."""
    if index == 0:
        return (0, 0, 0)
    rgb = colorsys.hsv_to_rgb((index * 0.618034) % 1, 0.7, 0.95)
    return tuple(round(255 * v) for v in rgb)


def _labelset(name: str, names: list[str], colours: list) -> LabelSet:
    classes = tuple(
        LabelClass(i, i, "-".join(str(n).split()) or f"class-{i}", tuple(rgb), (i,))
        for i, (n, rgb) in enumerate(zip(names, colours))
    )
    return LabelSet(name, classes)


def read_label_json(path: Path, name: str) -> LabelSet:
    """A brainchop label file: ``colormap.json``, or ``labels.json`` (+ ``colorLUT.json``)."""
    data = _read_json(path)
    try:
        if "labels" in data:
            names = list(data["labels"])
            colours = list(zip(data["R"], data["G"], data["B"], strict=True))
        else:
            names = [data[str(i)] for i in range(len(data))]
            lut = path.with_name("colorLUT.json")
            rgb = _read_json(lut) if lut.is_file() else {}
            colours = [
                [int(v) for v in re.findall(r"\d+", rgb[str(i)])] if str(i) in rgb else _colour(i)
                for i in range(len(names))
            ]
        return _labelset(name, names, colours)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a brainchop colormap or labels file ({err})") from None


def brainchop_labels(folder: Path, n_classes: int, labels: str | os.PathLike | None) -> LabelSet:
    """The label set of an imported model: ``labels`` (a brainchop JSON or a label-set TSV),
    else the folder's first ``colormap*.json`` or ``labels.json`` with ``n_classes`` names,
    else ``class-N`` names (with a warning)."""
    if labels is not None:
        path = Path(labels)
        found = load_labelset(path) if path.suffix == ".tsv" else read_label_json(path, folder.name)
        if found.n_classes != n_classes:
            raise ValueError(
                f"{path}: {found.n_classes} classes, but the network predicts {n_classes}"
            )
        return found
    for path in sorted(folder.glob("colormap*.json")) + [folder / "labels.json"]:
        if path.is_file():
            found = read_label_json(path, folder.name)
            if found.n_classes == n_classes:
                log.info("%s: class names and colours from %s", folder, path.name)
                return found
    log.warning("%s: no label file with %d classes; naming them class-N", folder, n_classes)
    names = ["background"] + [f"class-{i}" for i in range(1, n_classes)]
    return _labelset(folder.name, names, [_colour(i) for i in range(n_classes)])


def import_brainchop(
    folder: str | os.PathLike, out_path: str | os.PathLike, labels: str | os.PathLike | None = None
) -> Path:
    """Write the TF.js layers model in ``folder`` as a meshseg checkpoint at ``out_path``,
    and its label set as a TSV beside it (``out_path`` with the suffix ``.tsv``: the
    workflow's ``folder.labelset`` for the checkpoint as a ``pretrained`` model).

    ``labels`` names the classes (see :func:`brainchop_labels`). The checkpoint records
    :data:`BRAINCHOP_PREPROCESS`, or the label set and preprocessing of a meshseg export.
    """
    folder = Path(folder)
    spec, state, model_json = read_tfjs(folder)
    ours = model_json.get("_meshseg", {})
    if labels is None and "labelset" in ours:
        labelset = LabelSet.from_dict(ours["labelset"])
    else:
        labelset = brainchop_labels(folder, spec["n_classes"], labels)
    model = build_model(spec)
    model.load_state_dict(state)
    save_checkpoint(
        {
            "model": model.state_dict(),
            "model_config": spec,
            "labelset": labelset.to_dict(),
            "step": 0,
            "preprocess": ours.get("preprocess", BRAINCHOP_PREPROCESS),
            "source": {"format": "tfjs-layers", "folder": str(folder.resolve())},
        },
        out_path,
    )
    write_text(labelset.tsv_text(), Path(out_path).with_suffix(".tsv"))
    log.info("%s -> %s (%d classes)", folder, out_path, labelset.n_classes)
    return Path(out_path)


# ---- export ------------------------------------------------------------------------------


def _folded(model: torch.nn.Module) -> list[tuple[str, torch.nn.Conv3d]]:
    """Each layer's convolution (BatchNorm folded in) with its Keras name; the classifier last.

    Instance-normalised layers get brainchop's ``_gn`` suffix."""
    convs = []
    for i, layer in enumerate(model.layers):
        conv, norm = layer[0], layer[1]
        if isinstance(norm, torch.nn.BatchNorm3d):
            conv = fuse_conv_bn_eval(conv.eval(), norm.eval())
        suffix = INSTANCE_SUFFIX if isinstance(norm, torch.nn.InstanceNorm3d) else ""
        convs.append((f"conv3d_{i}{suffix}", conv))
    return convs + [("output", model.classifier)]


def _keras_layer(class_name: str, name: str, previous: str | None, **config) -> dict:
    """One layer of a Keras Functional topology, fed by the layer named ``previous``."""
    return {
        "class_name": class_name,
        "config": {"name": name, "trainable": False, "dtype": "float32", **config},
        "name": name,
        "inbound_nodes": [[[previous, 0, 0, {}]]] if previous else [],
    }


def _topology(loaded: LoadedModel) -> tuple[dict, bytes]:
    """``model.json`` (without labels) and the weight bytes of a MeshNet checkpoint."""
    activation = KERAS_ACTIVATIONS.get(loaded.model.config.activation)
    if activation is None:
        raise ValueError(
            f"{loaded.path}: activation {loaded.model.config.activation!r} has no TF.js "
            f"equivalent that brainchop reads (only {list(KERAS_ACTIVATIONS)})"
        )
    layers = [_keras_layer("InputLayer", "input", None, batch_input_shape=INPUT_SHAPE)]
    manifest, blobs = [], []
    for i, (name, conv) in enumerate(_folded(loaded.model)):
        kernel = conv.weight.detach().float().numpy().transpose(2, 3, 4, 1, 0)
        tensors = {"kernel": kernel}
        if conv.bias is not None:
            tensors["bias"] = conv.bias.detach().float().numpy()
        layers.append(
            _keras_layer(
                "Conv3D",
                name,
                layers[-1]["name"],
                filters=conv.out_channels,
                kernel_size=list(conv.kernel_size),
                strides=[1, 1, 1],
                dilation_rate=list(conv.dilation),
                padding="same",
                data_format="channels_last",
                activation="linear",
                use_bias=conv.bias is not None,
            )
        )
        for key, value in tensors.items():
            manifest.append(
                {"name": f"{name}/{key}", "shape": list(value.shape), "dtype": "float32"}
            )
            blobs.append(np.ascontiguousarray(value, "<f4").tobytes())
        if name != "output":
            layers.append(
                _keras_layer("Activation", f"activation_{i}", name, activation=activation)
            )
    spec = {
        "format": "layers-model",
        "generatedBy": f"meshseg {__version__}",
        "modelTopology": {
            "keras_version": "2.6.0",
            "backend": "tensorflow",
            "model_config": {
                "class_name": "Functional",
                "config": {
                    "name": "model",
                    "layers": layers,
                    "input_layers": [["input", 0, 0]],
                    "output_layers": [["output", 0, 0]],
                },
            },
        },
        "weightsManifest": [{"paths": [WEIGHTS_FILE], "weights": manifest}],
        "_meshseg": {"labelset": loaded.labelset.to_dict(), "preprocess": loaded.preprocess},
    }
    return spec, b"".join(blobs)


def export_tfjs(loaded: LoadedModel, out_dir: str | os.PathLike) -> Path:
    """Write a MeshNet checkpoint as a brainchop TF.js layers folder; return the folder.

    ``model.json``, ``group1-shard1of1.bin``, ``colormap.json`` and ``labels.json`` (class
    index -> name, as brainchop's output values are class indices), each atomically; nothing
    is written unless the network can be expressed."""
    if loaded.spec["arch"] != "meshnet":
        raise ValueError(f"{loaded.path}: TF.js export needs a MeshNet, not {loaded.spec['arch']}")
    spec, weights = _topology(loaded)
    out_dir = Path(out_dir)
    classes = loaded.labelset.classes
    colormap = {k: [c.rgb[i] for c in classes] for i, k in enumerate("RGB")}
    with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
        tmp.write_bytes(weights)
    write_text(
        json.dumps({**colormap, "labels": [c.name for c in classes]}, indent=1),
        out_dir / "colormap.json",
    )
    write_text(
        json.dumps({str(c.index): c.name for c in classes}, indent=1), out_dir / "labels.json"
    )
    write_text(json.dumps(spec, indent=1), out_dir / "model.json")
    log.info("%s -> %s (TF.js layers, %d classes)", loaded.path, out_dir, len(classes))
    return out_dir
