"""Stream publishers: integration events copied to an engine built for fan-out."""
