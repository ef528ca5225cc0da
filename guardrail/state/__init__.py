"""The durable state: the store protocol (``protocol.Store``), its SQLite and PostgreSQL
implementations, ``open_store`` that picks one from a path or a URL, schema, the
incident outbox and locks. Stores plain data: knows nothing of the language or the
engine. Imports only the leaves."""
