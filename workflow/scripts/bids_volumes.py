from meshseg.logs import log_to
from meshseg.report.bids import write_image_volumes

log_to(snakemake.log[0])
write_image_volumes(snakemake.input[0], snakemake.params.labelset, snakemake.output[0])
