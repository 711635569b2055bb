from meshseg.logs import log_to
from meshseg.nn.inference import InferenceConfig
from meshseg.report.experiments import dice_vs_subvolumes

log_to(snakemake.log[0])
dice_vs_subvolumes(
    snakemake.input.checkpoint,
    snakemake.input.image,
    snakemake.input.truth,
    snakemake.params.counts,
    InferenceConfig(**snakemake.params.inference, threads=snakemake.threads),
    snakemake.wildcards.subject,
    snakemake.wildcards.model,
    snakemake.output[0],
    patch=snakemake.params.patch,
)
