"""kdlab.nn."""
