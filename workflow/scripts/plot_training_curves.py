from meshseg.logs import log_to
from meshseg.report.figures import run_caption, training_curves

log_to(snakemake.log[0])
training_curves(
    dict(zip(snakemake.params.models, snakemake.input)),
    snakemake.output[0],
    run_caption(snakemake.params.run),
)
