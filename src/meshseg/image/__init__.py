"""Images, one file at a time: NIfTI and atomic file I/O (``io``), conform to 256^3 1 mm
(``conform``), back to the T1's native grid (``native``), world-coordinate resampling and
voxel boxes (``grid``), intensity padding and normalisation (``intensity``) and the prepared
volume a network reads (``preprocess``).

Layer 1: may import the base modules (``meshseg``, ``labels``, ``metrics``, ``logs``) and
``meshseg.image``; not ``data``, ``nn``, ``report``, ``segment`` or ``cli``.
"""
