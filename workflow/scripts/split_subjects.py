from meshseg.data.splits import split_table_file
from meshseg.logs import log_to

log_to(snakemake.log[0])
split = dict(snakemake.params.split)
seed = split.pop("seed")
split_table_file(snakemake.input[0], split, seed, snakemake.output[0])
