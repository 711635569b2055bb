from meshseg.logs import log_to
from meshseg.report.figures import run_caption, volume_agreement

log_to(snakemake.log[0])
volume_agreement(snakemake.input[0], snakemake.output[0], run_caption(snakemake.params.run))
