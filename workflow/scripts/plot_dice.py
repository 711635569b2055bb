from meshseg.figures import dice_boxplot, run_caption
from meshseg.logs import log_to

log_to(snakemake.log[0])
dice_boxplot(snakemake.input[0], snakemake.output[0], run_caption(snakemake.params.run))
