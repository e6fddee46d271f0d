"""Screens, one per task. Each reads through the app's ``Facade`` and reloads its data
in a worker when the app tells it the store changed."""
