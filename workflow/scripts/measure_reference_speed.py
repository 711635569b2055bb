from meshseg.claims import measure_reference_speed
from meshseg.logs import log_to

log_to(snakemake.log[0])
measure_reference_speed(
    snakemake.params.labelset,
    snakemake.output[0],
    snakemake.params.batches,
    **snakemake.params.compute,
    threads=snakemake.threads,
    patch=snakemake.params.patch,
)
