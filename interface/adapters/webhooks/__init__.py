"""Webhooks: endpoints, signatures, the address check, and the delivery outbox."""
