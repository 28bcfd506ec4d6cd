"""Store adapters, one package per store kind, each implementing connector.domain.ports.StoreAdapter."""
