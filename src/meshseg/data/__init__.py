"""Where subjects come from: the synthetic demo cohort (``demo``), Mindboggle-101 from OSF
(``osf``), the user's own folder (``folder``), subject sheets (``subjects``), train /
validation / test splits (``splits``) and the chosen dataset as a table (``datasets``).

Layer 2: may import the base modules (``meshseg``, ``labels``, ``metrics``, ``logs``),
``meshseg.image`` and ``meshseg.data``; not ``nn``, ``report``, ``segment`` or ``cli``.
"""
