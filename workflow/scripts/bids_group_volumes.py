from meshseg.logs import log_to
from meshseg.report.bids import write_group_volumes

log_to(snakemake.log[0])
write_group_volumes(snakemake.params.units, list(snakemake.input), snakemake.output[0])
