from meshseg.logs import log_to
from meshseg.report.tables import concat_tables

log_to(snakemake.log[0])
concat_tables(snakemake.input, snakemake.output[0])
