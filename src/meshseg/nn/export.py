"""Export a trained network to ONNX, and label a batch with the exported model (onnxruntime).

The exported graph maps ``image`` (B, 1, D, H, W) float32 intensities in [0, 1] to
``logits`` (B, n_classes, D, H, W); batch and spatial sizes are free for both MeshNet and
the U-Net (whose skip connections pad each axis to fit, so any size works; sizes divisible
by 8 avoid the padding). The model's metadata holds the label set and model config as JSON,
so class index c of ``logits`` is label id ``labelset["classes"][c]["id"]``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from meshseg.image.io import atomic_path
from meshseg.nn.checkpoint import LoadedModel

log = logging.getLogger(__name__)

AXES = ("batch", None, "depth", "height", "width")  # dynamic axes of image and logits


def export_onnx(loaded: LoadedModel, out_path: str | os.PathLike) -> Path:
    """Write the loaded checkpoint's network (eval mode, fp32) as one ONNX file, atomically.

    Uses torch's default exporter, ``torch.export`` based (``dynamo=True``, needs
    onnxscript): the TorchScript exporter it replaces is deprecated since torch 2.9. The
    example input is two crops of the training patch (size-1 axes would be fixed by
    torch.export); weights are stored inside the file (``external_data=False``) so a
    single file is renamed into place.
    """
    patch = loaded.patch
    example = torch.zeros(2, 1, patch, patch, patch)
    dims = {i: torch.export.Dim(name) for i, name in enumerate(AXES) if name}
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        torch.onnx.export(
            loaded.model.cpu(),
            (example,),
            tmp,
            dynamo=True,
            external_data=False,
            verbose=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=(dims,),
        )
        import onnx  # 0.7 s to import: `meshseg segment` should not wait for it

        exported = onnx.load(tmp)
        onnx.helper.set_model_props(
            exported,
            {
                "labelset": json.dumps(loaded.labelset.to_dict()),
                "model_config": json.dumps(loaded.spec),
            },
        )
        onnx.save(exported, tmp)
    log.info(
        "%s -> %s (%s, %d classes)",
        loaded.path,
        out_path,
        loaded.spec["arch"],
        loaded.labelset.n_classes,
    )
    return out_path


def onnx_labels(onnx_path: str | os.PathLike, batch: np.ndarray) -> np.ndarray:
    """Class index per voxel, (B, D, H, W), of a (B, 1, D, H, W) batch; onnxruntime on the CPU."""
    if not Path(onnx_path).is_file():
        raise ValueError(f"{onnx_path}: ONNX model not found")
    import onnxruntime  # slow to import, as onnx: only these two functions need them

    try:
        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own types for bad files
        raise ValueError(f"{onnx_path}: not a readable ONNX model ({type(err).__name__})") from None
    logits = session.run(["logits"], {"image": np.asarray(batch, dtype=np.float32)})[0]
    return logits.argmax(1)
