"""Widgets, one family per module. Each shows one piece of data (set from above) and
posts messages nested in its class when the person acts on it."""
