from meshseg.logs import log_to
from meshseg.nn.crops import TrainingData
from meshseg.nn.training import TrainConfig, train_files

log_to(snakemake.log[0])
data = TrainingData.load(
    snakemake.params.labelset,
    snakemake.input.train_images,
    snakemake.input.train_labels,
    snakemake.input.val_images,
    snakemake.input.val_labels,
)
train_files(
    TrainConfig(**snakemake.params.train, threads=snakemake.threads),
    snakemake.params.model,
    data,
    snakemake.output.checkpoint,
    snakemake.output.curve,
)
