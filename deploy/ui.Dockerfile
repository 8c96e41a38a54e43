# syntax=docker/dockerfile:1
# The persona chat: Chainlit on any persona API (an OpenAI-compatible base URL).
# Build from the repository root (see deploy/README.md):
#
#   docker build -f deploy/ui.Dockerfile -t persona-ui:0.1.0 .
#   docker run --rm -p 8001:8001 -e PERSONA_BASE_URL=http://HOST:8000/v1 \
#       -e PERSONA_API_KEY -e PERSONA_UI_PASSWORD -e CHAINLIT_AUTH_SECRET \
#       -e PERSONA_MODEL=xiaocong persona-ui:0.1.0
#
# PERSONA_* names, not OPENAI_*: Chainlit swaps OPENAI_API_KEY for a fake one when CI=true.
# PERSONA_API_KEY, PERSONA_UI_PASSWORD and CHAINLIT_AUTH_SECRET have no default here: pass them
# at run time. The entrypoint (deploy/ui-entrypoint.sh) refuses to start without a password, as
# `persona ui` does on a non-loopback host, unless PERSONA_ALLOW_NO_LOGIN=1.
#
# Tag, not digest: no digest of this tag is known offline; pin one as deploy/README.md shows
# (FROM python:3.11-slim-bookworm@sha256:...).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PERSONA_BASE_URL=http://serve:8000/v1 \
    PERSONA_MODEL=xiaocong \
    PERSONA_CARD=/app/cards/xiaocong.yaml \
    CHAINLIT_APP_ROOT=/home/persona/ui \
    PERSONA_HOME=/home/persona/.cache/persona
WORKDIR /app
COPY requirements/app.txt requirements/
RUN pip install -r requirements/app.txt
COPY persona/ persona/
COPY ui/ ui/
COPY cards/ cards/
COPY --chmod=0755 deploy/ui-entrypoint.sh /usr/local/bin/persona-ui
# Chainlit writes its config, translations and uploads under CHAINLIT_APP_ROOT, and the chat
# its threads under $PERSONA_HOME/chat unless PERSONA_DB_URL names a database (compose: its
# PostgreSQL): the folders the user owns (the code stays root's: read-only to the chat). A
# fixed uid, so Kubernetes' runAsNonRoot can check it and runAsUser names the same user;
# Kubernetes mounts emptyDirs there and on /tmp and keeps the rest read-only.
RUN groupadd --gid 10001 persona \
    && useradd --no-log-init --create-home --uid 10001 --gid 10001 persona \
    && mkdir -p "$CHAINLIT_APP_ROOT" "$PERSONA_HOME/chat" \
    && chown 10001:10001 "$CHAINLIT_APP_ROOT" \
    && chown -R 10001:10001 /home/persona/.cache
USER 10001:10001
EXPOSE 8001
ENTRYPOINT ["/usr/local/bin/persona-ui"]
CMD ["chainlit", "run", "ui/app.py", "--headless", "--host", "0.0.0.0", "--port", "8001"]
