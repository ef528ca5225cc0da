"""guardrail's built-in plugins, installed as ``guardrail_plugins``.

Each module is an ordinary plugin registered under the ``guardrail`` entry-point
group in ``pyproject.toml``; a third-party plugin that registers the same name
replaces the built-in.
"""
