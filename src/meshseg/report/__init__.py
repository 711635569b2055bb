"""What a run shows: per-subject evaluation (``evaluation``), tables over subjects and
models (``tables``), figures (``figures``), the claims table (``claims``), the
reference-size models' speed (``speed``), model cards (``modelcard``) and the
Dice-against-subvolumes experiment (``experiments``).

Layer 4: may import the base modules (``meshseg``, ``labels``, ``metrics``, ``logs``),
``meshseg.image``, ``meshseg.data``, ``meshseg.nn`` and ``meshseg.report``; not
``segment`` or ``cli``.
"""
