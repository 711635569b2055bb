# meshseg: MeshNet vs U-Net brain MRI segmentation (Catalyst.Neuro, reimplemented).
# Run: snakemake --cores 8 all   (the embedded demo cohort; see README.md)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


##### load rules #####


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/preprocess.smk"
include: "rules/train.smk"
include: "rules/infer.smk"
include: "rules/evaluate.smk"
include: "rules/experiment.smk"
include: "rules/report.smk"
include: "rules/bids.smk"


# Small table, figure and model-card jobs run where snakemake runs, never as cluster jobs.
localrules:
    record_subjects,
    summarise_experiments,
    write_model_card,
    plot_dice,
    plot_volumes,
    plot_dice_vs_subvolumes,
    plot_training_curves,
    plot_overlay,
    summarise_claims,
    bids_description,
    bids_lookup,
    bids_dseg,
    bids_volumes,
    bids_group_volumes,


##### target rules #####


rule all:
    default_target: True
    input:
        get_final_outputs,


rule segment:
    """Segment the test subjects (every subject of a folder with pretrained models): labels
    on each subject's own T1 grid and the volume table, without the experiments."""
    input:
        get_segmentations,


rule bids:
    """dataset bids: the BIDS-Derivatives dataset (bids.output) of every image that passes the
    filters, without the comparison tables and figures."""
    input:
        get_bids_outputs,
