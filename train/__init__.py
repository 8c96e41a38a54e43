"""Training: self-cognition data from a persona card, an XTuner run (QLoRA by default), convert
and merge.

dataset.py (with its plain, everyday, computed and operator sets), dataset_file.py,
xtuner_config.py, run_state.py and chat_template.py are pure Python (the app env imports them);
pipeline.py, cpu_patches.py, template_check.py and probe.py run inside the training env.
"""
