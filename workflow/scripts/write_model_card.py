from meshseg.logs import log_to
from meshseg.nn import checkpoint
from meshseg.report.modelcard import CardFiles, CardSources, write_model_card

log_to(snakemake.log[0])
write_model_card(
    checkpoint.load(snakemake.input.checkpoint),
    snakemake.wildcards.model,
    CardSources([snakemake.input.dice], snakemake.input.comparison, snakemake.input.subjects),
    snakemake.params.dataset,
    snakemake.params.licence,
    CardFiles(snakemake.output.md, snakemake.output.json),
)
