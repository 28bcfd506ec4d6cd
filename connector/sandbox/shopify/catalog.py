"""Catalog changes of the emulated shop: seeding a generated catalog, adding, updating and deleting products
and their variants (each variant with its inventory item), and custom collections with the products placed
in them.

Tags are a product field: changing them sends `products/update` (its REST body spells them as one
comma-separated string). A product's place in a collection is not: adding a product to a collection or
taking it out changes the collection (`collections/update`), not the product, whose `updatedAt` stays, so
only a full read of the catalog sees it."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from connector.sandbox.shopify import payloads
from connector.sandbox.shopify.models import (
    QUANTITY_NAMES,
    Collection,
    InventoryItem,
    InventoryLevel,
    Location,
    Product,
    ProductVariant,
)
from connector.sandbox.shopify.search import to_decimal
from connector.sandbox.shopify.state import StoreState, number_of

_COLORS: Final = ("Black", "White", "Red", "Blue", "Green", "Sand", "Navy", "Olive")
_SIZES: Final = ("XS", "S", "M", "L", "XL", "XXL")
_NOUNS: Final = ("T-Shirt", "Hoodie", "Sneaker", "Backpack", "Cap", "Jacket", "Mug", "Lamp", "Scarf", "Watch")
_ADJECTIVES: Final = ("Classic", "Vintage", "Urban", "Cozy", "Bold", "Everyday", "Premium", "Eco", "Retro")
_VENDORS: Final = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark")


class CatalogMixin(StoreState):
    """Products and variants: generated, added, changed and deleted."""

    def _new_variant(
        self,
        product: Product,
        *,
        title: str,
        sku: str | None,
        barcode: str | None,
        price: Decimal,
        compare_at_price: Decimal | None,
        options: list[tuple[str, str]],
        available: int | None,
        location: Location,
        when: datetime,
        tracked: bool = True,
    ) -> ProductVariant:
        item = InventoryItem(self.next_id("InventoryItem"), sku, when, when, tracked=tracked)
        variant = ProductVariant(
            legacy_resource_id=self.next_id("ProductVariant"),
            product=product,
            title=title,
            sku=sku,
            barcode=barcode,
            price=price,
            compare_at_price=compare_at_price,
            position=len(product.variants) + 1,
            options=options,
            inventory_item=item,
            created_at=when,
            updated_at=when,
        )
        item.variant = variant
        if available is not None:
            quantities = dict.fromkeys(QUANTITY_NAMES, 0)
            quantities["available"] = quantities["on_hand"] = available
            item.levels[location.legacy_resource_id] = InventoryLevel(item, location, quantities, when, when)
        product.variants.append(variant)
        self.variants[variant.legacy_resource_id] = variant
        self.inventory_items[item.legacy_resource_id] = item
        return variant

    def seed_catalog(
        self,
        products: int,
        variants_per_product: int = 3,
        *,
        seed: int = 0,
        available: tuple[int, int] = (0, 50),
        location: Location | None = None,
    ) -> list[Product]:
        """Generate `products` products with `variants_per_product` variants each: prices, SKUs, EAN-13
        barcodes, one inventory item per variant stocked at one location. Linear in the size; no webhooks."""
        rng = random.Random(seed)
        created: list[Product] = []
        with self.lock:
            where = location or self.primary_location
            start = self.now() - timedelta(days=30)
            for index in range(products):
                when = start + timedelta(seconds=index)
                number = self.next_id("Product")
                noun, adjective = rng.choice(_NOUNS), rng.choice(_ADJECTIVES)
                title = f"{adjective} {noun} {index + 1}"
                product = Product(
                    legacy_resource_id=number,
                    title=title,
                    handle=f"{adjective}-{noun}-{index + 1}".lower().replace(" ", "-"),
                    description_html=f"<p>The {adjective.lower()} {noun.lower()} everyone talks about.</p>",
                    vendor=rng.choice(_VENDORS),
                    product_type=noun,
                    status="ACTIVE",
                    tags=sorted({noun.lower(), adjective.lower()}),
                    created_at=when,
                    updated_at=when,
                )
                base = Decimal(rng.randrange(500, 20000)) / 100
                for position in range(variants_per_product):
                    color = _COLORS[position // len(_SIZES) % len(_COLORS)]
                    size = _SIZES[position % len(_SIZES)]
                    sku = f"SKU-{index + 1:06d}-{position + 1:03d}"
                    self._new_variant(
                        product,
                        title=f"{color} / {size}",
                        sku=sku,
                        barcode=_ean13(seed * 10_000_000 + index * 1000 + position),
                        price=base + position,
                        compare_at_price=(base + position + 10) if rng.random() < 0.2 else None,
                        options=[("Color", color), ("Size", size)],
                        available=rng.randint(*available),
                        location=where,
                        when=when,
                    )
                self.products[number] = product
                created.append(product)
        return created

    def add_product(
        self,
        title: str,
        *,
        variants: Iterable[dict[str, Any]] = ({},),
        vendor: str = "Acme",
        product_type: str = "",
        status: str = "ACTIVE",
        tags: Iterable[str] = (),
        notify: bool = True,
    ) -> Product:
        """Create a product; each variant dict may give title, sku, barcode, price, compare_at_price, available."""
        with self.lock:
            when = self.now()
            product = Product(
                legacy_resource_id=self.next_id("Product"),
                title=title,
                handle=re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"),
                description_html="",
                vendor=vendor,
                product_type=product_type,
                status=status,
                tags=sorted(tags),
                created_at=when,
                updated_at=when,
            )
            for spec in variants:
                variant_title = str(spec.get("title", "Default Title"))
                self._new_variant(
                    product,
                    title=variant_title,
                    sku=spec.get("sku"),
                    barcode=spec.get("barcode"),
                    price=Decimal(str(spec.get("price", "10.00"))),
                    compare_at_price=to_decimal(spec["compare_at_price"])
                    if spec.get("compare_at_price")
                    else None,
                    options=[("Title", variant_title)],
                    available=int(spec.get("available", 0)),
                    location=self.primary_location,
                    when=when,
                )
            self.products[product.legacy_resource_id] = product
            if notify:
                self._emit("products/create", payloads.product(product))
            return product

    def update_product(self, product_id: int | str, **changes: Any) -> Product:
        """Change product fields (title, vendor, status, tags, description_html, ...) and, with `variants` =
        {variant id: {price, sku, barcode, compare_at_price, title}}, its variants. Sends products/update."""
        with self.lock:
            product = self.product(product_id)
            when = self.now()
            for variant_id, fields in (changes.pop("variants", None) or {}).items():
                variant = self.variant(variant_id)
                for name, value in fields.items():
                    if name in ("price", "compare_at_price") and value is not None:
                        value = Decimal(str(value))
                    setattr(variant, name, value)
                    if name == "sku":
                        variant.inventory_item.sku = value
                variant.updated_at = when
            for name, value in changes.items():
                if not hasattr(product, name) or name in ("variants", "legacy_resource_id"):
                    raise AttributeError(f"products have no field {name!r}")
                setattr(product, name, sorted(value) if name == "tags" else value)
            product.updated_at = when
            self._emit("products/update", payloads.product(product))
            return product

    def add_collection(
        self,
        title: str,
        *,
        handle: str | None = None,
        products: Iterable[int | str] = (),
        notify: bool = True,
    ) -> Collection:
        """Create a custom collection holding `products` (ids or GIDs); sends collections/create."""
        with self.lock:
            when = self.now()
            found = Collection(
                legacy_resource_id=self.next_id("Collection"),
                title=title,
                handle=handle or re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"),
                created_at=when,
                updated_at=when,
            )
            self.collections[found.legacy_resource_id] = found
            self._place(found, products, when)
            if notify:
                self._emit("collections/create", payloads.collection(found))
            return found

    def collect(self, collection_id: int | str, products: Iterable[int | str]) -> Collection:
        """Add products to a collection (those already in it stay where they are); sends collections/update."""
        with self.lock:
            found = self.collection(collection_id)
            self._place(found, products, self.now())
            self._emit("collections/update", payloads.collection(found))
            return found

    def uncollect(self, collection_id: int | str, products: Iterable[int | str]) -> Collection:
        """Take products out of a collection; sends collections/update."""
        with self.lock:
            found = self.collection(collection_id)
            leaving = {self.product(p).legacy_resource_id for p in products}
            found.products = [p for p in found.products if p.legacy_resource_id not in leaving]
            for product in self.products.values():
                if product.legacy_resource_id in leaving:
                    product.collections = [c for c in product.collections if c is not found]
            found.updated_at = self.now()
            self._emit("collections/update", payloads.collection(found))
            return found

    def _place(self, found: Collection, products: Iterable[int | str], when: datetime) -> None:
        for product_id in products:
            product = self.product(product_id)
            if product not in found.products:
                found.products.append(product)
                product.collections.append(found)
                product.collections.sort(key=lambda c: c.legacy_resource_id)
        found.updated_at = when

    def delete_product(self, product_id: int | str) -> None:
        with self.lock:
            product = self.products.pop(number_of(product_id, "Product"))
            for found in product.collections:
                found.products.remove(product)
            for variant in product.variants:
                self.variants.pop(variant.legacy_resource_id, None)
                self.inventory_items.pop(variant.inventory_item.legacy_resource_id, None)
            self._emit("products/delete", payloads.product_deleted(product))


def _ean13(number: int) -> str:
    body = f"{200000000000 + number % 100000000000:012d}"
    total = sum(int(digit) * (3 if position % 2 else 1) for position, digit in enumerate(body))
    return body + str((10 - total % 10) % 10)
