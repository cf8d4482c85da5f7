"""kdlab.viz."""
