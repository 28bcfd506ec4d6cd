"""Settings only: typed configuration loaded from the environment, plus process configuration files."""
