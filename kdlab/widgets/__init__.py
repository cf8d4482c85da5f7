"""Notebook widgets: a placeholder; nothing here yet."""
