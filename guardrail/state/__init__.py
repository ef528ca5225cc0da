"""The durable state: the store protocol, its SQLite implementation, schema, the incident outbox and locks. Stores plain data: knows nothing of the language or the engine. Imports only the leaves."""
