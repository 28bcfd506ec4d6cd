"""Store adapters, one package per store kind, each implementing connector.ports.StoreAdapter."""
