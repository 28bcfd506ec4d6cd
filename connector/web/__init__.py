"""The web app's parts, each with an `init_app(app)`: problems, request context, health, metrics."""
