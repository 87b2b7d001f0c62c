"""Model clients: litellm for real providers, scripted replies for offline runs and tests."""
