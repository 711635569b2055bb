from meshseg.data.demo import make_demo_subject
from meshseg.logs import log_to

log_to(snakemake.log[0])
make_demo_subject(
    snakemake.params.index, snakemake.params.seed, snakemake.output.t1, snakemake.output.labels
)
