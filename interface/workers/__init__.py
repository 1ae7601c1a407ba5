"""Background workers: each runs its passes under a lease, one process at a time."""
