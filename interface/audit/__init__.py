"""Audit: the history exported for auditors and verified from the stored events alone."""
