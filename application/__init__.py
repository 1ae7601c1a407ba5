"""Use cases: the event-sourced application, the group-commit writer, and the ports."""
