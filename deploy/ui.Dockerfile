# syntax=docker/dockerfile:1
# The persona chat: Chainlit on any persona API (an OpenAI-compatible base URL).
# Build from the repository root (see deploy/README.md):
#
#   docker build -f deploy/ui.Dockerfile -t persona-ui:0.1.0 .
#   docker run --rm -p 8001:8001 -e PERSONA_BASE_URL=http://HOST:8000/v1 \
#       -e PERSONA_API_KEY -e PERSONA_MODEL=xiaocong persona-ui:0.1.0
#
# PERSONA_* names, not OPENAI_*: Chainlit swaps OPENAI_API_KEY for a fake one when CI=true.
# PERSONA_API_KEY has no default here: pass it at run time.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PERSONA_BASE_URL=http://serve:8000/v1 \
    PERSONA_MODEL=xiaocong \
    PERSONA_CARD=/app/cards/xiaocong.yaml \
    CHAINLIT_APP_ROOT=/home/persona/ui
WORKDIR /app
COPY requirements/app.txt requirements/
RUN pip install -r requirements/app.txt
COPY persona/ persona/
COPY ui/ ui/
COPY cards/ cards/
# Chainlit writes its config, translations and uploads under CHAINLIT_APP_ROOT.
RUN useradd --create-home --uid 10001 persona \
    && mkdir -p "$CHAINLIT_APP_ROOT" \
    && chown persona "$CHAINLIT_APP_ROOT"
USER 10001
EXPOSE 8001
CMD ["chainlit", "run", "ui/app.py", "--headless", "--host", "0.0.0.0", "--port", "8001"]
