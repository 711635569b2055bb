from meshseg.figures import run_caption, volume_agreement
from meshseg.logs import log_to

log_to(snakemake.log[0])
volume_agreement(snakemake.input[0], snakemake.output[0], run_caption(snakemake.params.run))
