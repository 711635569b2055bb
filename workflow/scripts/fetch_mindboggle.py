from meshseg.data.datasets import fetch_mindboggle_table
from meshseg.logs import log_to

log_to(snakemake.log[0])
fetch_mindboggle_table(
    snakemake.params.api_url,
    snakemake.params.cohorts,
    snakemake.params.subjects,
    snakemake.params.data_dir,
    snakemake.output.table,
    project=snakemake.params.project,
    folder=snakemake.params.folder,
)
