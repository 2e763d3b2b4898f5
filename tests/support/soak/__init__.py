"""The soak: hours of mixed agent traffic against a real `mlxcli serve`, proving that memory, latency and data
stay bounded (scripts/soak; a short run in tests/test_soak.py, the slow tier).

Test tooling, not a benchmark users run: its chat model is the scripted one (tests/support/scripted_server.py,
the echo script), so that every answer can be checked against the request it belongs to. Modules: server (the
server under soak and its models), mix (the workers' scenarios) with agents (the conversations), calls (one
request, its checks) and malformed; legs (quiet points, bursts, swaps) and crash (the crash leg); record,
report (the bounds) and plot; run (the timeline).
"""
