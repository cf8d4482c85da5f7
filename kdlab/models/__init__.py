"""kdlab.models."""
