"""Networks: the models (``models``), training crops (``crops``) and loop (``training``),
where subvolumes are cut (``subvolumes``), the per-voxel vote (``vote``), inference
(``inference``) and its whole-volume pass (``whole``), inference-only fused networks
(``fusion``), device and precision (``runtime.Compute``), checkpoints (``checkpoint``, read
once into a ``LoadedModel``), ONNX export (``export``) and brainchop's TF.js layers models
in and out (``tfjs``). Inference does not import training.

Layer 3: may import the base modules (``meshseg``, ``labels``, ``metrics``, ``logs``),
``meshseg.image``, ``meshseg.data`` and ``meshseg.nn``; not ``report``, ``segment`` or
``cli``.
"""
