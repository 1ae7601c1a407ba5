"""`python -m interface.cli ...`: the `ledger` command, as the supervisor
starts its children (the interpreter it runs on, whatever the PATH says)."""

from interface.processes.parent_death import die_with_supervisor

# Before anything else: a child must not outlive a supervisor killed hard.
die_with_supervisor()

from interface.cli.main import main  # noqa: E402 - after the line above, on purpose

main()
