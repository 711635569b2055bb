from meshseg.logs import log_to
from meshseg.nn import checkpoint
from meshseg.nn.inference import InferenceConfig
from meshseg.nn.runtime import Compute
from meshseg.report.experiments import dice_vs_subvolumes, write_experiment

log_to(snakemake.log[0])
config = InferenceConfig(**snakemake.params.inference, threads=snakemake.threads)
table = dice_vs_subvolumes(
    checkpoint.load(snakemake.input.checkpoint),
    snakemake.input.image,
    snakemake.input.truth,
    snakemake.params.counts,
    config,
    Compute.from_config(config),
)
write_experiment(table, snakemake.wildcards.subject, snakemake.wildcards.model, snakemake.output[0])
