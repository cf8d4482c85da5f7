"""Plots (search traces, learning curves): a placeholder; nothing here yet."""
