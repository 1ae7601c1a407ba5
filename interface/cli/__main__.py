"""`python -m interface.cli ...`: the `ledger` command, as the supervisor
starts its children (the interpreter it runs on, whatever the PATH says)."""

from interface.cli.main import main

main()
