"""Tests of the crew crypto core and membership rules."""
