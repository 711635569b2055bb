"""Where subjects come from: the synthetic demo cohort (``demo``), Mindboggle-101 from OSF
(``osf``), subject sheets (``subjects``), train / validation / test splits (``splits``), and
the chosen dataset (demo, Mindboggle-101 or the user's own folder) resolved to one subject
table (``datasets``).

Layer 2: may import the base modules (``meshseg``, ``labels``, ``metrics``, ``logs``),
``meshseg.image`` and ``meshseg.data``; not ``nn``, ``report``, ``segment`` or ``cli``.
"""
