"""Networks: the models (``models``), training crops (``crops``) and loop (``training``),
where subvolumes are cut (``subvolumes``), the per-voxel vote (``vote``), inference
(``inference``), inference-only fused networks (``fusion``), device and precision
(``runtime``), checkpoints (``checkpoint``) and ONNX export (``export``).

Layer 3: may import the base modules (``meshseg``, ``labels``, ``metrics``, ``logs``),
``meshseg.image``, ``meshseg.data`` and ``meshseg.nn``; not ``report``, ``segment`` or
``cli``.
"""
