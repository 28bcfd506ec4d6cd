"""Infrastructure: database and models, migrations, queues, runtime wiring, HTTP transport, embedded Redis, logs, metrics, crypto."""
