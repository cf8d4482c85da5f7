"""kdlab.data.synth."""
