from meshseg.logs import log_to
from meshseg.report.claims import measure_reference_speed

log_to(snakemake.log[0])
measure_reference_speed(
    snakemake.params.labelset,
    snakemake.output[0],
    snakemake.params.batches,
    **snakemake.params.compute,
    threads=snakemake.threads,
    patch=snakemake.params.patch,
)
