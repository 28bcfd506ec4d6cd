"""Domain types shared by the core and the adapters: plain, immutable, storage-agnostic."""

from connector.domain.catalog import InventoryLevel, Product, Variant
from connector.domain.money import Money, parse_money

__all__ = ["InventoryLevel", "Money", "Product", "Variant", "parse_money"]
