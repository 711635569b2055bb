from meshseg.logs import log_to
from meshseg.report.figures import dice_boxplot, run_caption

log_to(snakemake.log[0])
dice_boxplot(snakemake.input[0], snakemake.output[0], run_caption(snakemake.params.run))
