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
