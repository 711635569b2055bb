from meshseg.logs import log_to
from meshseg.report.figures import OverlayImages, overlay, run_caption

log_to(snakemake.log[0])
overlay(
    OverlayImages(
        snakemake.wildcards.subject,
        snakemake.input.t1,
        snakemake.input.truth,
        dict(zip(snakemake.params.models, snakemake.input.predictions)),
    ),
    snakemake.params.labelset,
    snakemake.output[0],
    run_caption(snakemake.params.run),
)
