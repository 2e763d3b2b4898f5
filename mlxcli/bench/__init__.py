"""``mlxcli bench``: prompts of exact length, the engine and HTTP targets, scenarios, reports."""
