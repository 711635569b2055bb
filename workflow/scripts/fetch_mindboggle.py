from meshseg.data.datasets import fetch_mindboggle_table
from meshseg.data.osf import OSFFolder
from meshseg.logs import log_to

log_to(snakemake.log[0])
fetch_mindboggle_table(
    OSFFolder(snakemake.params.api_url, snakemake.params.project, snakemake.params.folder),
    snakemake.params.cohorts,
    snakemake.params.subjects,
    snakemake.params.data_dir,
    snakemake.output.table,
)
