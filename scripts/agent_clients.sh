#!/usr/bin/env bash
# Claude Code, Codex, OpenCode and the Vercel AI SDK against `mlxcli serve`, each with its default prompts
# and tools, served by a tiny random model with a 64k window (it proves the protocol, not the answers).
# Installs the clients with npm under $AGENTS_DIR (default .cache/agents); prints, per client, its exit
# status and the routes it called; exits 1 if a client failed or the server answered any 4xx/5xx.
#   scripts/agent_clients.sh [claude codex opencode ai-sdk]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/_venv.sh"
mlxcli_venv
PY="$VENV/bin/python"
WORK="${AGENTS_DIR:-$ROOT/.cache/agents}"
PORT="${PORT:-18471}"
URL="http://127.0.0.1:$PORT"
CLIENTS=("${@:-claude codex opencode ai-sdk}")
CLIENTS=(${CLIENTS[*]})
mkdir -p "$WORK"

echo "installing the clients (npm) into $WORK/npm ..." >&2
npm install --silent --no-audit --no-fund --prefix "$WORK/npm" \
    @anthropic-ai/claude-code @openai/codex opencode-ai ai @ai-sdk/openai zod >"$WORK/npm.log" 2>&1 \
    || { tail -20 "$WORK/npm.log"; exit 1; }
BIN="$WORK/npm/node_modules/.bin"

MODEL="$WORK/tiny-64k"
if [ ! -f "$MODEL/model.safetensors" ]; then
    "$VENV/bin/mlxcli" pull smollm2-135m >&2 || exit 1
    TOKENIZER="$("$PY" -c 'from mlxcli.paths import models_dir; print(models_dir() / "smollm2-135m")')"
    "$PY" "$ROOT/scripts/agent_clients/tiny_model.py" "$TOKENIZER" "$MODEL" || exit 1
fi

LOG="$WORK/serve.log"
"$VENV/bin/mlxcli" serve --model "$MODEL" --port "$PORT" --max-tokens 64 --store-path "$WORK/store.db" \
    --conversation-dir "$WORK/logs" >"$LOG" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null' EXIT
for _ in $(seq 300); do curl -sf "$URL/health" >/dev/null && break; sleep 0.2; done

# Each client in a scratch directory of its own, with a prompt that asks for one tool call, then an answer.
PROMPT="List the files in this directory with a tool, then say how many there are."
run_claude() {
    ANTHROPIC_BASE_URL="$URL" ANTHROPIC_API_KEY=unused DISABLE_AUTOUPDATER=1 CLAUDE_CONFIG_DIR="$1/.claude" \
        "$BIN/claude" -p "$PROMPT" --model claude-sonnet-4-5
}
run_codex() {
    CODEX_HOME="$1/.codex" MLXCLI_KEY=unused "$BIN/codex" exec --skip-git-repo-check -m tiny \
        -c model_provider=mlxcli -c model_providers.mlxcli.name=mlxcli \
        -c "model_providers.mlxcli.base_url=\"$URL/v1\"" -c model_providers.mlxcli.wire_api=responses \
        -c model_providers.mlxcli.env_key=MLXCLI_KEY "$PROMPT"
}
run_opencode() {
    cat >"$1/opencode.json" <<JSON
{"\$schema": "https://opencode.ai/config.json",
 "provider": {"mlxcli": {"npm": "@ai-sdk/openai-compatible", "name": "mlxcli", "options": {"baseURL": "$URL/v1"},
              "models": {"tiny": {"name": "tiny", "limit": {"context": 65536, "output": 64}}}}}}
JSON
    XDG_DATA_HOME="$1/.data" XDG_CONFIG_HOME="$1/.config" "$BIN/opencode" run -m mlxcli/tiny "$PROMPT"
}
run_ai_sdk() {
    MLXCLI_URL="$URL" NODE_PATH="$WORK/npm/node_modules" node "$ROOT/scripts/agent_clients/ai_sdk.mjs"
}

failed=0
for client in "${CLIENTS[@]}"; do
    dir="$WORK/run-$client"; rm -rf "$dir"; mkdir -p "$dir"; touch "$dir/a.txt" "$dir/b.txt"
    fn="run_${client//-/_}"
    before=$(wc -l <"$LOG")
    (cd "$dir" && "$fn" "$dir") >"$WORK/$client.log" 2>&1 </dev/null &
    pid=$!
    ( sleep 600; kill "$pid" 2>/dev/null ) & watchdog=$!  # a client that hangs fails
    wait "$pid"; status=$?
    kill "$watchdog" 2>/dev/null
    sleep 1  # the access log line of a stream is written as it closes
    routes=$(tail -n +"$((before + 1))" "$LOG" | grep -oE ' (GET|POST|HEAD|DELETE|PUT|OPTIONS) /[^ ]* [0-9]{3} ' \
        | sort | uniq -c | awk '{printf "%s %s %s x%s; ", $2, $3, $4, $1}')
    bad=$(printf '%s' "$routes" | grep -cE ' [45][0-9]{2} ')
    echo "$client: exit $status; routes: ${routes:-none}"
    if [ "$status" -ne 0 ] || [ "$bad" -ne 0 ] || [ -z "$routes" ]; then
        failed=1
        echo "  (client output: $WORK/$client.log)"; tail -5 "$WORK/$client.log" | sed 's/^/  | /'
    fi
done
echo "server log: $LOG"
exit "$failed"
