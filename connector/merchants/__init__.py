"""Merchants: their records, installs and key-based connects, platform clients, and customers' privacy requests."""
