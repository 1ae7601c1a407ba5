"""Reconciliation checks: each compares two independently kept records (the
log and its views, withdrawals and the processor's payouts, the ledger and
the broker) through the application's `ReconciliationCheck` port."""
