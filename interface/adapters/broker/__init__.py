"""Brokers: the simulated broker and its scripted prices."""
