from meshseg.logs import log_to
from meshseg.nn.runtime import Compute
from meshseg.report.speed import measure_reference_speed

log_to(snakemake.log[0])
measure_reference_speed(
    snakemake.params.labelset,
    snakemake.output[0],
    Compute.from_settings(**snakemake.params.compute, threads=snakemake.threads),
    snakemake.params.batches,
    patch=snakemake.params.patch,
)
