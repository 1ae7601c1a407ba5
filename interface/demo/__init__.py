"""The demo data set that `ledger serve --demo` loads."""
