from pathlib import Path

from meshseg.logs import log_to
from meshseg.report.bids import write_description

log_to(snakemake.log[0])
write_description(
    Path(snakemake.output.description).parent,
    snakemake.params.source,
    dict(zip(snakemake.params.models, snakemake.input.checkpoints)),
)
