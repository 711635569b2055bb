from meshseg.logs import log_to
from meshseg.report.tables import summarise

log_to(snakemake.log[0])
models = snakemake.params.models
per_model = len(snakemake.input.stats) // len(models)  # expand() lists them model by model
summarise(
    snakemake.input.metrics,
    dict(zip(models, snakemake.input.checkpoints)),
    {m: snakemake.input.stats[i * per_model : (i + 1) * per_model] for i, m in enumerate(models)},
    snakemake.output.dice,
    snakemake.output.volumes,
    snakemake.output.comparison,
)
