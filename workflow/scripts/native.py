from meshseg.image.native import labels_to_native
from meshseg.logs import log_to

log_to(snakemake.log[0])
labels_to_native(snakemake.input.labels, snakemake.input.reference, snakemake.output[0])
