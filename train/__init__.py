"""Training: self-cognition data from a persona card, an XTuner QLoRA run, convert and merge.

phrasings.py, dataset.py, xtuner_config.py and chat_template.py are pure Python (the app env
imports them); pipeline.py, cpu_patches.py and probe.py run inside the training env.
"""
