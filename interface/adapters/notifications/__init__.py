"""Notifications other than email: guard messages and live closure progress."""
