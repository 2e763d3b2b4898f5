"""Test helpers: tiny models, the scripted model, servers and stream checkers."""
