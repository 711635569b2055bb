from meshseg.data.splits import split_table_file
from meshseg.logs import log_to

log_to(snakemake.log[0])
split_table_file(
    snakemake.input[0], snakemake.params.split, snakemake.params.seed, snakemake.output[0]
)
