"""Adapters that implement the application's ports against the outside world."""
