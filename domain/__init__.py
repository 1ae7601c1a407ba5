"""The ledger's domain model: money, accounts, transfers and the batch that decides them.

Pure: imports only the standard library and eventsourcing's domain module.
"""
