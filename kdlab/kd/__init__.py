"""kdlab.kd."""
