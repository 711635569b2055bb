from meshseg.logs import log_to
from meshseg.report.claims import summarise_claims

log_to(snakemake.log[0])
summarise_claims(
    snakemake.input.comparison,
    snakemake.input.dice,
    snakemake.input.volumes,
    list(snakemake.input.reference),
    snakemake.output[0],
)
