from meshseg.logs import log_to
from meshseg.native import labels_to_native

log_to(snakemake.log[0])
labels_to_native(snakemake.input.labels, snakemake.input.reference, snakemake.output[0])
