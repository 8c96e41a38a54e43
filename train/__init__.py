"""Training: self-cognition data from a persona card, an XTuner run (QLoRA by default), convert
and merge.

dataset.py (with its plain, everyday, computed and operator sets), dataset_file.py, options.py,
xtuner_config.py and chat_template.py are pure Python (the app env imports them).
pipeline.py runs inside the training env: the recipe (setup -> data -> train -> convert -> merge
-> verify -> manifest) with its steps in step_*.py, its command line in pipeline_args.py, XTuner's
processes and log in xtuner_run.py and xtuner_log.py, the CPU's other load in cpu_load.py;
cpu_patches.py, template_check.py and probe.py run there too.
"""
