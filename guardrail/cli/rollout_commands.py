"""Rollout commands (filled in by the engine)."""


def register(app):
    pass
