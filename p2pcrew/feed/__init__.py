"""Feeds: identity, the entry format, validation and the store."""
