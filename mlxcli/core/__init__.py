"""Neutral types shared by every front end and the engine."""
