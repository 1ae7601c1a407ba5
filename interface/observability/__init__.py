"""Logging and metrics, configured once."""
