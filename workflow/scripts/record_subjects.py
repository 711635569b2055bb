from meshseg.logs import log_to
from meshseg.subjects import write_subject_sheet

log_to(snakemake.log[0])
write_subject_sheet(snakemake.params.sheet, snakemake.output[0])
