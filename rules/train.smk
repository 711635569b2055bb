if not PRETRAINED:  # pretrained models (config "pretrained") are used as they are

    rule train_model:
        """Train one model of config["models"] on the train split; validation Dice on the way.

        A killed job resumes from checkpoint.pt.resume.pt (kept beside the output) on rerun.
        One SLURM job per model (no group); gpu=1 when config compute.gpu is true (get_gpus).
        """
        input:
            unpack(get_training_inputs),
        output:
            checkpoint=path("checkpoint"),
            curve=path("training_curve"),
        log:
            log_path("checkpoint"),
        conda:
            "../envs/meshseg.yaml"
        threads: config["compute"]["train_threads"]  # Snakemake caps it at --cores
        resources:
            mem_mb=8000,
            runtime=240,
            gpu=get_gpus(),
        params:
            train=get_train_config,
            model=get_model_params,
            labelset=DATASET["labelset"],
        script:
            "../workflow/scripts/train.py"
