"""The writer in a process of its own: `ledger writer` serves one LedgerWriter
over ZeroMQ, and every other process submits to it through a client with the
writer's own surface (docs/architecture.md#the-write-path)."""
