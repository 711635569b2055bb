from meshseg.labels import load_labelset
from meshseg.logs import log_to
from meshseg.nn import checkpoint
from meshseg.nn.inference import InferenceConfig, LabelFiles, segment_file
from meshseg.nn.runtime import Compute

log_to(snakemake.log[0])
config = InferenceConfig(**snakemake.params.inference, threads=snakemake.threads)
segment_file(
    checkpoint.load(snakemake.input.checkpoint, load_labelset(snakemake.params.labelset)),
    snakemake.input.image,
    LabelFiles(snakemake.output.labels, snakemake.output.lut, snakemake.output.stats),
    config,
    Compute.from_config(config),
)
