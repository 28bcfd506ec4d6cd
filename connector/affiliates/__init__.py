"""Creator affiliates: programs and their rates, links, attribution of orders, the commission ledger, payouts.

The tables are in connector.infra.models (the ledger's unique constraints carry its idempotency); this
package owns their writes. Orders never import it: the ledger follows orders through the outbox.
"""
