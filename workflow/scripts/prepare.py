from meshseg.image.preprocess import prepare_file
from meshseg.logs import log_to

log_to(snakemake.log[0])
prepare_file(
    snakemake.input[0],
    snakemake.output[0],
    size=snakemake.params.size,
    labels=snakemake.params.labels,
)
