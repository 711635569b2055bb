from meshseg.logs import log_to
from meshseg.report.bids import write_dseg

log_to(snakemake.log[0])
write_dseg(
    snakemake.input.labels,
    snakemake.params.t1,
    snakemake.wildcards.space,
    {
        "nifti": snakemake.output.nifti,
        "json": snakemake.output.json,
        "model": snakemake.wildcards.model,
        "checkpoint": snakemake.input.checkpoint,
    },
)
