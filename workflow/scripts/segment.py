from meshseg.logs import log_to
from meshseg.nn.inference import InferenceConfig, segment_file

log_to(snakemake.log[0])
segment_file(
    snakemake.input.checkpoint,
    snakemake.input.image,
    snakemake.output.labels,
    snakemake.output.lut,
    snakemake.output.stats,
    InferenceConfig(**snakemake.params.inference, threads=snakemake.threads),
    patch=snakemake.params.patch,
    labelset=snakemake.params.labelset,
)
