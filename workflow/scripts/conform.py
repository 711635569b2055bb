from meshseg.image.conform import conform_file
from meshseg.logs import log_to

log_to(snakemake.log[0])
conform_file(
    snakemake.input[0],
    snakemake.output[0],
    labels=snakemake.params.labels,
    backend=snakemake.params.backend,
)
