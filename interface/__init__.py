"""Everything that touches the outside: HTTP, CLI, settings, logging, adapters, wiring."""
