from meshseg.logs import log_to
from meshseg.report.bids import write_lookup

log_to(snakemake.log[0])
write_lookup(snakemake.params.labelset, snakemake.output[0])
