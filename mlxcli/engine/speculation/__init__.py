"""Speculative decoding inside the continuous batch: each row proposes its own tokens (prompt lookup,
a draft model), one forward pass of the whole batch verifies them all, each row keeps its own accepted
prefix and drops the rest of its KV (rowcache.py)."""
