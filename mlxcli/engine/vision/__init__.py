"""The vision model kind: mlx-vlm models (a config with a vision tower) that read images beside text.

model.py detects and loads them and turns a rendered prompt and its images into the model's inputs
(on the caller's thread); runner.py generates with them, one request at a time.
"""
