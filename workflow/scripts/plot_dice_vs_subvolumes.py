from meshseg.figures import dice_vs_subvolumes, run_caption
from meshseg.logs import log_to

log_to(snakemake.log[0])
dice_vs_subvolumes(list(snakemake.input), snakemake.output[0], run_caption(snakemake.params.run))
