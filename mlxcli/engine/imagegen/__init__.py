"""The image-generation model kind: mflux's pipelines (model.py: families, presets, loading), stepped one
denoising step per engine pass (work.py)."""
