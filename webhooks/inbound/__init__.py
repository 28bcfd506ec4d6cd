"""Inbound store webhooks: verified, deduplicated intake and batched processing of many merchants at once.

One module per concept: `receiver` (the `/webhooks/<source>` routes: raw body, verification, fast
acknowledgement), `intake` (storing a delivery once), `scheduling` (waking at most one drain job per shard
of merchants), and `drain` (the job that applies the pending deliveries of many merchants in batches, each
merchant's in store-time order, the sweeper that wakes shards whose job was lost, and replay).
"""
