"""`mlxcli chat`: a terminal chat (REPL) and one-shot answers for scripts.

- ``backends``: where answers come from — the in-process engine, or a running
  server over Chat Completions, Responses or Anthropic Messages (``http``, on
  ``mlxcli.client``) — as neutral events.
- ``session``: the conversation: history, system prompt, retry, storing turns.
- ``render``: events → the terminal (streamed Markdown, dimmed reasoning, footer).
- ``commands``: the slash commands; ``editor``: line editing and input history;
  ``repl`` and ``oneshot``: the two ways to run.

Nothing here imports mlx: the engine is started by ``mlxcli.cli.common.start_engine``.
"""
