"""kdlab.data."""
