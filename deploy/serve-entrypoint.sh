#!/bin/sh
# Entrypoint of the persona serve image: vLLM's OpenAI-compatible server on a merged persona model.
#
# The official vllm/vllm-openai image's own entrypoint is `vllm serve` with no CMD; this script
# replaces it so that every container serves the way `persona serve` does (serve/server.py): the
# card id as the served model name, defaults from the folder's generation_config.json, the same
# context length, and the API key in VLLM_API_KEY, never on the command line (where `ps` and
# vLLM's log of its arguments would show it) nor in an image layer or a compose file.
# persona's gate (serve/gate.py, copied into the image on PYTHONPATH) runs in front of vLLM, so
# every route but /health and /ping needs the key, as under `persona serve`.
# Arguments given to the container are appended (e.g. --tensor-parallel-size 2).
#
#   PERSONA_MODEL          served model name: the card's id (required)
#   PERSONA_API_KEY        the key clients must send (required; /health and /ping stay open)
#   PERSONA_MODEL_DIR      the merged Hugging Face folder (default /models/persona)
#   PERSONA_PORT           port inside the container (default 8000)
#   PERSONA_MAX_MODEL_LEN  context length in tokens (default 2048, as persona serves); the gate
#                          refuses a max_tokens above it
#   PERSONA_GATE_MAX_N     choices one request may ask for (`n`; the image sets 4)
set -eu

model_dir="${PERSONA_MODEL_DIR:-/models/persona}"

fail() {
    echo "persona-serve: $2" >&2
    exit "$1"
}

[ -n "${PERSONA_MODEL:-}" ] || fail 64 "set PERSONA_MODEL to the card's id (the served model name)"
# An empty key would start an open server: refuse instead.
[ -n "${PERSONA_API_KEY:-}" ] || fail 64 "set PERSONA_API_KEY (compose: deploy/.env; Kubernetes: the persona-api Secret)"
[ -f "$model_dir/config.json" ] || fail 66 "no merged model at $model_dir (config.json missing): train the card, then mount its runs/<id>/merged folder there"

VLLM_API_KEY="$PERSONA_API_KEY"
PERSONA_GATE_MAX_TOKENS="${PERSONA_MAX_MODEL_LEN:-2048}"
export VLLM_API_KEY PERSONA_GATE_MAX_TOKENS
exec vllm serve "$model_dir" \
    --served-model-name "$PERSONA_MODEL" \
    --host 0.0.0.0 \
    --port "${PERSONA_PORT:-8000}" \
    --max-model-len "${PERSONA_MAX_MODEL_LEN:-2048}" \
    --generation-config auto \
    --middleware persona.serve.gate.PersonaGate \
    "$@"
