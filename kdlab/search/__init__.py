"""kdlab.search."""
