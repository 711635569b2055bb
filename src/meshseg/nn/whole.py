"""Whole-volume inference: one fully convolutional pass over the volume's tissue box, or,
for a MeshNet with instance norm, over the whole volume layer by layer."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from meshseg.image.grid import nonzero_box
from meshseg.labels import class_dtype
from meshseg.nn.fusion import FusedConv, fusable, fuse_for_inference
from meshseg.nn.models import require_fully_convolutional
from meshseg.nn.runtime import Compute

Pads = list[tuple[int, int]]  # per layer, the zeros before and after its input on one axis


def same_padding(lo: int, hi: int, size: int, dilations: Sequence[int]) -> Pads:
    """The zeros a "same" pass pads around each layer's input along one axis of ``size``
    voxels, when only the outputs ``lo:hi`` are computed and each layer only what the next
    needs: ``lo - m : hi + m`` within the volume, ``m`` the later layers' dilations summed.

    >>> same_padding(0, 10, 10, [1, 2])  # the whole axis: every layer pads its dilation
    [(1, 1), (2, 2)]
    >>> same_padding(4, 5, 10, [1, 2])  # far from the faces: valid convolutions
    [(0, 0), (0, 0)]
    """
    margins = [sum(dilations[i:]) for i in range(len(dilations) + 1)]
    starts = [max(lo - m, 0) for m in margins]
    stops = [min(hi + m, size) for m in margins]
    return [
        (d - (starts[i + 1] - starts[i]), d - (stops[i] - stops[i + 1]))
        for i, d in enumerate(dilations)
    ]


def class_argmax(logits: torch.Tensor) -> torch.Tensor:
    """``logits.argmax(1)``, ties to the lower index, fast in both memory formats.

    On the CPU, ``torch.max`` finds the same indices in half of ``argmax``'s time in
    channels_last_3d; on a contiguous (B, C, ...) tensor one running maximum over the classes
    takes an eighth of ``argmax``'s (which reduces a strided dimension) at 3 classes.
    """
    if not logits.is_contiguous():
        return torch.max(logits, 1).indices
    best, index = logits[:, 0].clone(), torch.zeros_like(logits[:, 0], dtype=torch.int64)
    for c in range(1, logits.shape[1]):
        index.masked_fill_(logits[:, c] > best, c)
        torch.maximum(best, logits[:, c], out=best)
    return index


class Scratch:
    """Memory reused for one tensor at a time, of any shape: a flat buffer that grows as
    needed. Fresh pages cost the CPU about as much as the copy that fills them."""

    def __init__(self, compute: Compute) -> None:
        self.compute = compute
        self.buffer = torch.empty(0, dtype=torch.uint8, device=compute.device)

    def tensor(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised (1, C, D, H, W) tensor in the compute's layout, on the buffer."""
        n, c, *space = shape
        size = math.prod(shape) * dtype.itemsize
        if size > len(self.buffer):
            self.buffer = torch.empty(size, dtype=torch.uint8, device=self.compute.device)
        flat = self.buffer[:size].view(dtype)
        if self.compute.channels_last:
            return flat.view(n, *space, c).permute(0, 4, 1, 2, 3)
        return flat.view(shape)


class LayerInput:
    """One layer's input, chunk after chunk: the ``2 * dilation`` slices the last chunk left
    (or the zeros "same" padding puts before the first), the new chunk, and the zeros padded
    after the last and around H and W (``pads``, see :func:`same_padding`), assembled in a
    :class:`Scratch` that every layer shares; the kept slices in memory of their own."""

    def __init__(self, dilation: int, pads: tuple[tuple[int, int], ...], scratch: Scratch):
        self.keep, self.pads, self.scratch = 2 * dilation, pads, scratch
        self.kept = Scratch(scratch.compute)  # the same shape every chunk: allocated once
        self.n_kept = 0  # 0 until the first chunk

    def __call__(self, x: torch.Tensor, last: bool) -> torch.Tensor | None:
        """The layer's next input with ``x`` appended, or None if it has too few slices yet
        for one output slice (they are kept for the next chunk)."""
        (front, back), (h0, h1), (w0, w1) = self.pads
        before = self.n_kept or front
        after = back if last else 0
        height, width = x.shape[3] + h0 + h1, x.shape[4] + w0 + w1
        depth = before + x.shape[2] + after
        buffer = self.scratch.tensor((1, x.shape[1], depth, height, width), x.dtype)
        kept = self.kept.tensor((1, x.shape[1], self.keep, height, width), x.dtype)
        for border in (np.s_[:, :, :, :h0], np.s_[:, :, :, height - h1 :]):
            buffer[border] = 0
        for border in (np.s_[..., :w0], np.s_[..., width - w1 :]):
            buffer[border] = 0
        buffer[:, :, :before] = kept[:, :, :before] if self.n_kept else 0
        buffer[:, :, before : depth - after, h0 : height - h1, w0 : width - w1] = x
        buffer[:, :, depth - after :] = 0
        self.n_kept = min(self.keep, depth)
        kept[:, :, : self.n_kept] = buffer[:, :, depth - self.n_kept :]
        return buffer if depth > self.keep else None


@torch.inference_mode()
def predict_whole(
    model: torch.nn.Module,
    image: np.ndarray,
    compute: Compute,
    slab: int | None = None,
    classify: int = 8,
    budget_mb: int = 1024,
) -> np.ndarray:
    """Class index per voxel of one zero-padded ("same") pass of the network over the volume,
    the pass ``model(image)`` makes, computing only what the tissue's labels need.

    The non-zero voxels' bounding box grown by the receptive radius R is computed exactly:
    each layer computes only the part of its output that the next layer reads, padding zeros
    where the volume ends as the plain pass does (:func:`same_padding`). Every voxel outside
    that box sees no tissue and gets the label the network gives an empty input (computed
    once); the plain pass agrees there too, except within R of a face, where its padding
    reaches. The box streams through the layers ``slab`` slices at a time (by default as many
    as keep about ``budget_mb`` of features): each layer computes every slice once and keeps
    only the ``2 * dilation`` input slices its next chunk needs, so the labels do not depend
    on the slabs, nothing is computed twice, and the features held are those 2R slices plus
    about two chunks. The classifier runs ``classify`` slices at a time, so at 104 classes
    and 256^2 only about 220 MB of logits are held. Needs MeshNet's ``layers`` /
    ``classifier`` split; a U-Net's pooling makes its output depend on the tiling. A network
    with instance norm, whose every voxel depends on the whole volume, goes to
    :func:`predict_layerwise` instead.
    """
    radius = require_fully_convolutional(model)
    if model.has_instance_norm:
        return predict_layerwise(model, image, compute)
    net = fuse_for_inference(
        model.to(compute.device), valid=True, channels_last=compute.channels_last
    )
    dilations = list(model.config.dilations)

    def labels_of(block: np.ndarray, depth: int, pads: list[Pads]) -> Iterator[np.ndarray]:
        """Labels of ``block``, the first layer's input, ``depth`` slices at a time; ``pads``:
        the zeros each layer adds on the axes D, H and W."""
        scratch = Scratch(compute)
        inputs = [LayerInput(d, axes, scratch) for d, *axes in zip(dilations, *pads)]
        with compute.autocast():
            for top in range(0, len(block), depth):
                x = compute.to_device(torch.from_numpy(block[top : top + depth])[None, None])
                last = top + depth >= len(block)
                for layer, layer_input in zip(net.layers, inputs):
                    x = layer_input(x, last)
                    if x is None:
                        break  # too few slices yet for one output slice
                    x = layer(x)
                else:
                    for start in range(0, x.shape[2], classify):
                        logits = net.classifier(x[:, :, start : start + classify])
                        yield class_argmax(logits)[0].cpu().numpy()

    valid = [[(0, 0)] * len(dilations)] * 3
    empty = next(labels_of(np.zeros((2 * radius + 1,) * 3, np.float32), 2 * radius + 1, valid))
    out = np.full(image.shape, empty[0, 0, 0], dtype=class_dtype(model.config.n_classes))
    box = nonzero_box(image, radius)
    if box is None:
        return out
    pads = [same_padding(s.start, s.stop, n, dilations) for s, n in zip(box, image.shape)]
    reads = tuple(
        slice(max(s.start - radius, 0), min(s.stop + radius, n)) for s, n in zip(box, image.shape)
    )
    block = np.ascontiguousarray(image[reads], dtype=np.float32)
    itemsize = torch.finfo(compute.dtype).bits // 8 if compute.dtype is not None else 4
    per_slice = max(model.config.per_layer("channels")) * block[0].size * itemsize
    slab = slab or max((budget_mb * 2**20 // per_slice - 2 * radius) // 3, 1)
    at = box[0].start
    for labels in labels_of(block, slab, pads):
        out[at : at + len(labels), box[1], box[2]] = labels
        at += len(labels)
    return out


def conv_slabs(
    module: nn.Module, x: torch.Tensor, slab: int, compute: Compute
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(top, result)`` for each ``slab`` slices of D of a zero-padded ("same") convolution
    ``module`` (a FusedConv, or any module that maps each voxel's features alone) over the
    ``(C, D, H, W)`` features ``x`` (CPU), on ``compute``'s device. Each slab is read with
    the convolution's margin into a reused buffer in the compute's layout, zeros beyond the
    volume; H and W are padded by the convolution."""
    margin, depth, scratch = slab_margin(module), x.shape[1], Scratch(compute)
    if isinstance(module, FusedConv):
        module = module.with_padding([0, *module.padding[1:]])  # D: read from x, zeros at faces
    for top in range(0, depth, slab):
        bottom = min(top + slab, depth)
        low, high = max(top - margin, 0), min(bottom + margin, depth)
        before, after = margin - (top - low), margin - (high - bottom)
        shape = (1, len(x), before + high - low + after, *x.shape[2:])
        part = scratch.tensor(shape, x.dtype)
        part[:, :, :before] = 0
        part[:, :, before : shape[2] - after] = x[None, :, low:high]
        part[:, :, shape[2] - after :] = 0
        yield top, module(part)[0].cpu()  # (C_out, bottom - top, H, W)


def slab_margin(module: nn.Module) -> int:
    """The slices a slab of ``module``'s output reads on each side along D: a FusedConv's
    padding there (its dilation), 0 for a module that maps each voxel alone."""
    return module.padding[0] if isinstance(module, FusedConv) else 0


def convolve_slabs(module: nn.Module, x: torch.Tensor, slab: int, compute: Compute) -> torch.Tensor:
    """The output of :func:`conv_slabs`, as one ``(C_out, D, H, W)`` tensor on the CPU.

    When the result has ``x``'s channels and dtype it overwrites ``x``, each slab as soon as
    no later slab reads those slices, so that one feature map is held, not two."""
    margin, depth, out, pending = slab_margin(module), x.shape[1], None, []
    for top, result in conv_slabs(module, x, slab, compute):
        bottom = top + result.shape[1]
        if out is None:
            shape = (len(result), depth, *x.shape[2:])
            same = shape == x.shape and result.dtype == x.dtype
            out = x if same else torch.empty(shape, dtype=result.dtype)
        pending.append((top, result))
        # the next slab reads from bottom - margin on: slices above it are free
        while pending and (
            pending[0][0] + pending[0][1].shape[1] <= bottom - margin or bottom == depth
        ):
            start, done = pending.pop(0)
            out[:, start : start + done.shape[1]] = done
    return out


def feature_statistics(
    conv: FusedConv, x: torch.Tensor, slab: int, compute: Compute
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel, the mean and biased variance of ``conv``'s output over the whole volume
    (float64): each slab's, combined as Chan, Golub and LeVeque do. The output is not kept."""
    count, mean, squares = 0, torch.zeros((), dtype=torch.float64), 0
    for _, result in conv_slabs(conv, x, slab, compute):
        var_b, mean_b = torch.var_mean(result.float(), dim=(1, 2, 3), correction=0)
        n = result[0].numel()
        delta = mean_b.double() - mean
        mean = mean + delta * n / (count + n)
        squares = squares + var_b.double() * n + delta**2 * count * n / (count + n)
        count += n
    return mean, squares / count


def normalised(
    conv: FusedConv, mean: torch.Tensor, var: torch.Tensor, eps: float, **activation: str
) -> FusedConv:
    """``conv`` (without post-op) followed by instance norm with the statistics ``mean`` and
    ``var``, as one convolution: ``(W x + b - mean) / sqrt(var + eps)`` is a convolution with
    its weights and bias scaled; ``activation``: :class:`FusedConv`'s post-op arguments."""
    folded = copy.deepcopy(conv.conv)
    scale = 1 / torch.sqrt(var + eps)
    bias = folded.bias.double() if folded.bias is not None else torch.zeros_like(mean)
    folded.weight = nn.Parameter((folded.weight.double() * scale.view(-1, 1, 1, 1, 1)).float())
    folded.bias = nn.Parameter(((bias - mean) * scale).float())
    return FusedConv(folded, conv.padding, **activation)


def map_slabs_(module: nn.Module, x: torch.Tensor, slab: int) -> None:
    """Apply the voxel-wise ``module`` (an activation) to ``(C, D, H, W)`` ``x`` in place."""
    for top in range(0, x.shape[1], slab):
        part = x[:, top : top + slab]
        result = module(part)
        if result is not part:
            part.copy_(result)


@torch.inference_mode()
def predict_layerwise(
    model: nn.Module, image: np.ndarray, compute: Compute, slab: int = 16
) -> np.ndarray:
    """Class index per voxel of one zero-padded ("same") pass over the whole volume, as the
    network itself computes it, including instance norm's whole-volume statistics.

    The network runs one layer at a time over the whole volume, ``slab`` slices at a time, on
    one feature map that each layer overwrites (4 bytes x channels x voxels: 1 GB for 15
    channels at 256^3; two while the width changes), on the CPU. A layer with instance norm
    runs its convolution twice: once for the statistics of its output (not kept), once with
    the norm folded into it (:func:`normalised`) and its ReLU or GELU fused in, so that the
    feature map is written once. fp32.
    """
    net = fuse_for_inference(model.to(compute.device))
    x = torch.tensor(image, dtype=torch.float32)[None]  # (1, D, H, W), a copy: overwritten
    for conv, norm, activation, _ in net.layers:  # MeshNetLayer: conv, norm, activation, dropout
        if isinstance(norm, nn.InstanceNorm3d):
            statistics = feature_statistics(conv, x, slab, compute)
            fused = fusable(activation)
            conv = normalised(conv, *statistics, norm.eps, **(fused or {"activation": "none"}))
            activation = nn.Identity() if fused else activation
        x = convolve_slabs(conv, x, slab, compute)
        if not isinstance(activation, nn.Identity):
            map_slabs_(activation, x, slab)
    labels = convolve_slabs(ArgmaxOf(net.classifier), x, slab, compute)[0]
    return labels.numpy().astype(class_dtype(model.config.n_classes))


class ArgmaxOf(nn.Module):
    """The class index (B, 1, D, H, W) of a classifier's logits, ties to the lower index."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return class_argmax(self.classifier(x))[:, None]
