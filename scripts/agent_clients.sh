#!/usr/bin/env bash
# Claude Code, Codex, OpenCode and the Vercel AI SDK, each with its default prompts and tools, against the real
# `mlxcli serve` code serving a scripted model (tests/support/scripted_server.py, script `agent`): its first
# answer is a call to one of the offered tools, its answer to the tool's result ends the turn. So each client
# must complete one agent turn: a tool call, the tool run and its result sent back, a final answer, exit 0.
# Installs the clients with npm under $AGENTS_DIR (default .cache/agents). Prints, per client (also one the
# watchdog stopped, or the run interrupted), its exit status, the routes it called, the tool call and the final
# answer, and how long after its start it sent its first POST; exits 0 only if every client passed with no
# 4xx/5xx answer. codex-ws is Codex through its built-in OpenAI provider (openai_base_url), which tries the
# Responses API over a WebSocket first: the server refuses the handshake with 426 (the one 4xx allowed) and
# Codex must fall back to HTTP at once.
#   scripts/agent_clients.sh [claude codex codex-ws opencode ai-sdk]     (CLIENT_TIMEOUT=seconds, default 300)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/_venv.sh"
set +e  # _venv.sh sets -e: a failing client must not end the run
mlxcli_venv
PY="$VENV/bin/python"
WORK="${AGENTS_DIR:-$ROOT/.cache/agents}"
PORT="${PORT:-18471}"
URL="http://127.0.0.1:$PORT"
LIMIT="${CLIENT_TIMEOUT:-300}"
CLIENTS=(${@:-claude codex codex-ws opencode ai-sdk})
mkdir -p "$WORK"

"$ROOT/scripts/agent_clients/install.sh" "$WORK" || exit 1
BIN="$WORK/npm/node_modules/.bin"

LOG="$WORK/serve.log"
(cd "$ROOT" && exec "$PY" -m tests.support.scripted_server --script agent --port "$PORT" --prompt-cache-dir none \
    --store-path "$WORK/store.db" --conversation-dir "$WORK/logs") >"$LOG" 2>&1 &
SERVER=$!
stop_server() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }
trap stop_server EXIT
for _ in $(seq 600); do curl -sf "$URL/health" >/dev/null && break; sleep 0.2; done
curl -sf "$URL/health" >/dev/null || { echo "the server did not start:"; tail -20 "$LOG"; exit 1; }

# Each client in a scratch directory of its own (its home and config there too), with a prompt that asks for
# one tool call, then an answer.
PROMPT="List the files in this directory with a tool, then say how many there are."
run_claude() {
    ANTHROPIC_BASE_URL="$URL" ANTHROPIC_API_KEY=unused DISABLE_AUTOUPDATER=1 CLAUDE_CONFIG_DIR="$1/.claude" \
        "$BIN/claude" -p "$PROMPT" --model claude-sonnet-4-5
}
run_codex() {
    mkdir -p "$1/.codex"
    CODEX_HOME="$1/.codex" MLXCLI_KEY=unused "$BIN/codex" exec --skip-git-repo-check -m scripted \
        -c model_provider=mlxcli -c model_providers.mlxcli.name=mlxcli \
        -c "model_providers.mlxcli.base_url=\"$URL/v1\"" -c model_providers.mlxcli.wire_api=responses \
        -c model_providers.mlxcli.env_key=MLXCLI_KEY "$PROMPT"
}
run_codex_ws() {
    mkdir -p "$1/.codex"
    CODEX_HOME="$1/.codex" OPENAI_API_KEY=unused "$BIN/codex" exec --skip-git-repo-check -m scripted \
        -c "openai_base_url=\"$URL/v1\"" "$PROMPT"
}
run_opencode() {
    cat >"$1/opencode.json" <<JSON
{"\$schema": "https://opencode.ai/config.json",
 "provider": {"mlxcli": {"npm": "@ai-sdk/openai-compatible", "name": "mlxcli", "options": {"baseURL": "$URL/v1"},
              "models": {"scripted": {"name": "scripted", "limit": {"context": 65536, "output": 4096}}}}}}
JSON
    XDG_DATA_HOME="$1/.data" XDG_CONFIG_HOME="$1/.config" XDG_CACHE_HOME="$1/.cache" XDG_STATE_HOME="$1/.state" \
        "$BIN/opencode" run -m mlxcli/scripted "$PROMPT"
}
run_ai_sdk() {
    MLXCLI_URL="$URL" node "$WORK/npm/ai_sdk.mjs"
}
export URL BIN WORK PROMPT
export -f run_claude run_codex run_codex_ws run_opencode run_ai_sdk

# The server has finished every request (a stream's access line is written as it closes).
settle() {
    for _ in $(seq 150); do
        curl -sf "$URL/health" | grep -q '"in_flight":0' && return
        sleep 0.2
    done
}

# Seconds from the epoch time $1 to the start of the first POST among the access log lines on stdin.
first_post() {
    "$PY" -c '
import re, sys, time
for line in sys.stdin:
    m = re.match(r"(\S+ \S+),(\d+) INFO mlxcli.access: \S+ POST .* (\d+)ms$", line)
    if m:
        end = time.mktime(time.strptime(m[1], "%Y-%m-%d %H:%M:%S")) + int(m[2]) / 1000
        print(f"{end - int(m[3]) / 1000 - float(sys.argv[1]):.2f}s"); break
else:
    print("never")' "$1"
}

failed=0
report() {  # report CLIENT STATUS FIRST_LOG_LINE START_TIME
    local client=$1 status=$2 slice routes bad call answer
    slice=$(tail -n +"$3" "$LOG")
    routes=$(printf '%s\n' "$slice" | grep -v ' GET /health ' | grep -oE ' (GET|POST|HEAD|DELETE|PUT|OPTIONS) /[^ ]* [0-9]{3} ' \
        | sort | uniq -c | awk '{printf "%s %s %s x%s; ", $2, $3, $4, $1}')
    bad=$(printf '%s' "$routes" | sed 's|GET /v1/responses 426||' | grep -cE ' [45][0-9]{2} ')
    call=$(printf '%s\n' "$slice" | sed -n 's/.*agent: tool call //p' | head -1)
    answer=$(printf '%s\n' "$slice" | sed -n 's/.*agent: final answer //p' | grep 'tool answered' | tail -1)
    echo "$client: exit $status; routes: ${routes:-none; }first POST $(printf '%s\n' "$slice" | first_post "$4") after its start"
    echo "  tool call: ${call:-none}; final answer: ${answer:-none}"
    if [ "$status" -ne 0 ] || [ "$bad" -ne 0 ] || [ -z "$routes" ] || [ -z "$call" ] || [ -z "$answer" ]; then
        failed=1
        echo "  FAILED (client output: $WORK/$client.log)"; tail -5 "$WORK/$client.log" | sed 's/^/  | /'
    fi
}

current="" client_pid=""
interrupted() {  # the run itself was stopped: stop the client under way and say so, then stop
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null && wait "$client_pid" 2>/dev/null
    [ -n "$current" ] && report "$current" 130 "$first" "$started"
    echo "interrupted"; exit 130
}
trap interrupted INT TERM

for client in "${CLIENTS[@]}"; do
    declare -F "run_${client//-/_}" >/dev/null || { echo "$client: unknown client (claude codex codex-ws opencode ai-sdk)"; failed=1; continue; }
    dir="$WORK/run-$client"; rm -rf "$dir"; mkdir -p "$dir"; touch "$dir/a.txt" "$dir/b.txt"
    first=$(($(wc -l <"$LOG") + 1))
    current=$client started=$("$PY" -c 'import time; print(time.time())')
    # A client that hangs is stopped after $LIMIT seconds, with everything it started (watchdog.py: the pid below).
    (cd "$dir" && exec "$PY" "$ROOT/scripts/agent_clients/watchdog.py" "$LIMIT" bash -c 'run_${1//-/_} "$2"' _ "$client" "$dir") \
        >"$WORK/$client.log" 2>&1 </dev/null &
    client_pid=$!
    wait "$client_pid"; status=$?
    client_pid=""
    [ "$status" -eq 124 ] && echo "(stopped after ${LIMIT}s)" >>"$WORK/$client.log"
    settle
    report "$client" "$status" "$first" "$started"
    current=""
done
echo "server log: $LOG"
exit "$failed"
