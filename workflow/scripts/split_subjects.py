from meshseg.logs import log_to
from meshseg.splits import split_table_file

log_to(snakemake.log[0])
split = dict(snakemake.params.split)
seed = split.pop("seed")
split_table_file(snakemake.input[0], split, seed, snakemake.output[0])
