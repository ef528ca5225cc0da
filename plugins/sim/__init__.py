"""Placeholder while the simulated fleet is written."""
