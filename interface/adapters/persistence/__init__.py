"""PostgreSQL: the event recorder, the schema, and the interface's own tables."""
