"""kdlab.widgets."""
