"""Orders: checkout, order queries and cancellation, the push of accepted orders to the store, and the periodic
reconcile of holds and expired pins."""
