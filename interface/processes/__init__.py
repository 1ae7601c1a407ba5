"""The service's processes: `ledger serve`'s supervisor and what it starts
(docs/architecture.md#processes)."""
