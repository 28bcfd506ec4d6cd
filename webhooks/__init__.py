"""Inbound webhook receivers (stores) and outbound delivery to the platform."""
