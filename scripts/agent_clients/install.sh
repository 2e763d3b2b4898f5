#!/usr/bin/env bash
# Install (or update) the agent CLIs with npm into DIR/npm: Claude Code, Codex, OpenCode and the Vercel AI SDK.
#   scripts/agent_clients/install.sh DIR      (their commands: DIR/npm/node_modules/.bin)
set -uo pipefail
DIR="$1"
mkdir -p "$DIR/npm"
echo "installing the agent CLIs (npm) into $DIR/npm ..." >&2
npm install --silent --no-audit --no-fund --prefix "$DIR/npm" \
    @anthropic-ai/claude-code @openai/codex opencode-ai ai @ai-sdk/openai zod >"$DIR/npm.log" 2>&1 \
    || { tail -20 "$DIR/npm.log" >&2; exit 1; }
cp "$(dirname "${BASH_SOURCE[0]}")/ai_sdk.mjs" "$DIR/npm/"  # ES modules resolve packages from their own folder
