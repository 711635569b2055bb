from meshseg.evaluation import evaluate_files
from meshseg.logs import log_to

log_to(snakemake.log[0])
evaluate_files(snakemake.input.prediction, snakemake.input.truth, snakemake.params.labelset,
               snakemake.wildcards.subject, snakemake.wildcards.model, snakemake.output[0])
