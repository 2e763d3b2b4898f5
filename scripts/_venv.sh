# Sourced by scripts/serve and scripts/test: create or reuse .venv at the repo
# root and (re)install mlxcli into it when pyproject.toml changed. Idempotent.
# Usage: mlxcli_venv [extra]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

mlxcli_openblas() {
    # The Linux CPU fast path needs a system OpenBLAS; install it best-effort
    # when we can (root with apt). Without it mlxcli still runs, just slower.
    [ "$(uname -s)" = Linux ] || return 0
    ls /usr/lib/*/openblas-pthread/libopenblas.so.0 >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing libopenblas0-pthread (Linux CPU fast path)..." >&2
        (apt-get update -qq && apt-get install -y -qq libopenblas0-pthread) >/dev/null 2>&1 \
            || echo "warning: could not install libopenblas0-pthread; the CPU fast path stays off" >&2
    fi
    return 0
}

mlxcli_chromium() {
    # The web page's browser tests drive a system Chromium (never a downloaded one); install
    # Debian's best-effort when we can (root with apt). Without it those tests fail, saying how to get one.
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 && return 0
    [ -n "${MLXCLI_CHROMIUM:-}" ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium (the web page's browser tests)..." >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
            || echo "warning: could not install chromium; the browser tests will fail (scripts/test --fast leaves them out)" >&2
    fi
    return 0
}

mlxcli_espeak() {
    # The transcription tests speak their sentences with espeak-ng; install Debian's best-effort when we
    # can (root with apt). Without it those tests fail.
    command -v espeak-ng >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing espeak-ng (the transcription tests' speech)..." >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng) >/dev/null 2>&1 \
            || echo "warning: could not install espeak-ng; the transcription tests will fail" >&2
    fi
    return 0
}

mlxcli_venv() {
    local extra="${1:-}" spec="$ROOT" stamp
    [ -n "$extra" ] && spec="$ROOT[$extra]"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    stamp="$VENV/.installed${extra:+-$extra}"
    if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
        echo "installing mlxcli${extra:+[$extra]} into $VENV ..." >&2
        if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip \
               && "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$spec"; } >"$VENV/install.log" 2>&1; then
            tail -n 30 "$VENV/install.log" >&2
            echo "error: installing mlxcli failed (full log: $VENV/install.log)" >&2
            exit 1
        fi
        touch "$stamp"
    fi
}

mlxcli_imagegen() {
    # mflux (image generation) cannot be an extra (its metadata pins torch and mlx[cuda13] on Linux):
    # `mlxcli install imagegen` installs it without those pins. A no-op once it is there.
    "$VENV/bin/mlxcli" install imagegen >>"$VENV/install.log" 2>&1 || {
        tail -n 30 "$VENV/install.log" >&2
        echo "error: installing mflux failed (full log: $VENV/install.log)" >&2
        exit 1
    }
}
