"""Orders: checkout, order queries and cancellation, and the push of accepted orders to the store."""
