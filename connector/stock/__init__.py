"""Stock: sellable levels, reservations (Redis counters and their rows), the store's own orders and events, reconcile."""
