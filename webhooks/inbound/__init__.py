"""Inbound store webhooks: verified, deduplicated intake and batched processing per merchant.

One module per concept: `receiver` (the `/webhooks/<source>` routes: raw body, verification, fast
acknowledgement), `intake` (storing a delivery once), `scheduling` (waking one drain job per merchant),
and `drain` (the job that applies a merchant's pending deliveries in store-time order, the sweeper that
wakes merchants whose job was lost, and replay).
"""
