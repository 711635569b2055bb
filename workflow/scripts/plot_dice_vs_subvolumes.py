from meshseg.logs import log_to
from meshseg.report.figures import dice_vs_subvolumes_plot, run_caption

log_to(snakemake.log[0])
dice_vs_subvolumes_plot(
    list(snakemake.input), snakemake.output[0], run_caption(snakemake.params.run)
)
