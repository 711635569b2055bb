from meshseg.data.subjects import write_subject_sheet
from meshseg.logs import log_to

log_to(snakemake.log[0])
write_subject_sheet(snakemake.params.sheet, snakemake.output[0])
