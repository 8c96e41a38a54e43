#!/bin/sh
# Entrypoint of the persona UI image: the login check `persona ui` makes before it starts Chainlit
# (ui/login.py, check_exposure), then the image's CMD (`chainlit run ui/app.py ... --host 0.0.0.0`).
#
# Why a check here: the container always listens on 0.0.0.0, i.e. beyond its own loopback, and
# the image starts Chainlit directly, not through `persona ui`. So, as `persona ui --host 0.0.0.0`
# does, it refuses to start without a password unless PERSONA_ALLOW_NO_LOGIN=1 says something in
# front of it (a VPN, an ingress or proxy with its own login) already restricts who reaches it.
# With a password, Chainlit signs its login tokens with CHAINLIT_AUTH_SECRET; ui/app.py would
# make up a fresh one at each start, which logs everyone out on every restart and differs between
# replicas, so the image asks for a fixed one (compose: deploy/.env; Kubernetes: a Secret).
#
#   PERSONA_UI_PASSWORD     the chat's login password (required unless PERSONA_ALLOW_NO_LOGIN=1)
#   PERSONA_UI_USER         its user name (default persona)
#   CHAINLIT_AUTH_SECRET    signs Chainlit's login tokens (required with a password)
#   PERSONA_ALLOW_NO_LOGIN  1: start without a login (nothing else counts as yes)
set -eu

fail() {
    echo "persona-ui: $1" >&2
    exit 64
}

if [ -z "${PERSONA_UI_PASSWORD:-}" ]; then
    [ "${PERSONA_ALLOW_NO_LOGIN:-}" = 1 ] || fail "the chat would listen on 0.0.0.0 with no login: set PERSONA_UI_PASSWORD (and CHAINLIT_AUTH_SECRET) to require one, or PERSONA_ALLOW_NO_LOGIN=1 if something in front of it (a VPN, a proxy with its own login) already restricts who can reach it"
    echo "persona-ui: no login (PERSONA_ALLOW_NO_LOGIN=1): whoever reaches port 8001 can chat" >&2
elif [ -z "${CHAINLIT_AUTH_SECRET:-}" ]; then
    fail "set CHAINLIT_AUTH_SECRET (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))'): it signs the login tokens, and one made up per start would log everyone out at each restart"
fi

exec "$@"
