from meshseg.logs import log_to
from meshseg.report.evaluation import LabelMaps, evaluate_subject

log_to(snakemake.log[0])
evaluate_subject(
    LabelMaps(
        snakemake.input.prediction,
        snakemake.input.native,
        snakemake.input.get("truth"),
        snakemake.input.get("native_truth"),
    ),
    snakemake.params.labelset,
    snakemake.wildcards.subject,
    snakemake.wildcards.model,
    snakemake.output[0],
)
