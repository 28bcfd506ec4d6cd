"""`storelink sandbox`: the store emulators and the platform receiver on their own, for trying a flow by hand.

Prints each one's address, the settings that point Storelink at them, how to connect a merchant to them, and
their control endpoints (products, stock, refunds, faults, received events) with `curl` lines; then serves
until Ctrl-C or a signal stops it (`connector.cli` turns SIGTERM and the like into a clean exit)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

import click
from rich.console import Console
from rich.markup import escape

from connector.cli.common import Context, console, pass_ctx
from connector.demo.services import WALMART_CHANNEL
from connector.sandbox import platform
from connector.sandbox import shopify as shopify_sandbox
from connector.sandbox import walmart as walmart_sandbox

logger = logging.getLogger(__name__)

NAMES: Final = ("shopify", "walmart", "platform")
STORELINK_WEB: Final = "http://127.0.0.1:8000"
"""Where `storelink up` serves by default: the PUBLIC_URL the stores call back."""


def _port(base: int, index: int) -> int:
    return base + index if base else 0


def _shopify(stack: contextlib.ExitStack, port: int, products: int, out: Console) -> list[str]:
    server = stack.enter_context(shopify_sandbox.serve(port, bulk_step_delay=0.0))
    server.store.seed_catalog(products, 3, available=(0, 50))
    app, shop = server.emulator.client, server.store.shop.myshopify_domain
    control = f"{server.url}/_sandbox"
    out.print(f"[bold]Shopify[/] shop {shop} (Admin API 2026-10, OAuth, bulk operations) at {server.url}")
    out.print(f"  install it: open {STORELINK_WEB}/shopify/install?shop={shop} once `storelink up` runs")
    for line in (
        f"curl {control}",
        f'curl -X POST {control}/products -d \'{{"title": "Tee", "variants": [{{"sku": "TEE-1", '
        '"price": "19.00", "available": 5}]}\'',
        f'curl -X POST {control}/inventory -d \'{{"sku": "TEE-1", "available": 0}}\'',
        f"curl {control}/orders",
        f"curl -X POST {control}/orders/ORDER_ID/fulfil",
        f'curl -X POST {control}/orders/ORDER_ID/refund -d \'{{"lines": {{"LINE_ID": 1}}}}\'',
        f'curl -X POST {control}/faults -d \'{{"next": [503, {{"status": 429, "retry_after": 2}}]}}\'',
    ):
        out.print(f"  {escape(line)}", highlight=False)
    return [
        f"SHOPIFY_ADMIN_BASE_URL={server.url}",
        f"SHOPIFY_API_KEY={app.client_id}",
        f"SHOPIFY_API_SECRET={app.client_secret}",
    ]


def _walmart(stack: contextlib.ExitStack, port: int, products: int, out: Console) -> list[str]:
    server = stack.enter_context(walmart_sandbox.serve(port, mcs_delay=0.5))
    server.store.seed_catalog(products, quantity=25)
    server.store.add_channel(WALMART_CHANNEL)
    emulator, control = server.emulator, f"{server.url}/_sandbox"
    out.print(
        f"[bold]Walmart[/] seller {server.store.partner_id} (Marketplace API v3, Multichannel) at {server.url}"
    )
    out.print(
        f"  connect it: WALMART_CLIENT_SECRET={emulator.client_secret} storelink merchants add walmart "
        f"--name walmart-seller --client-id {emulator.client_id} --seller-id {server.store.partner_id} "
        f"--base-url {server.url}",
        highlight=False,
    )
    for line in (
        f"curl {control}",
        f'curl -X POST {control}/items -d \'{{"sku": "WM-TEE-1", "price": 19.0, "quantity": 5}}\'',
        f'curl -X POST {control}/inventory -d \'{{"sku": "WM-TEE-1", "quantity": 0}}\'',
        f'curl -X POST {control}/orders -d \'{{"lines": [{{"sku": "WM-TEE-1", "quantity": 1}}]}}\'',
        f"curl {control}/fulfilments",
        f"curl -X POST {control}/fulfilments/SELLER_ORDER_ID/ship",
        f'curl -X POST {control}/faults -d \'{{"next": [503], "endpoints": ["mcs_create"]}}\'',
    ):
        out.print(f"  {escape(line)}", highlight=False)
    return [f"WALMART_BASE_URL={server.url}"]


def _platform(stack: contextlib.ExitStack, port: int, products: int, out: Console) -> list[str]:
    server = stack.enter_context(platform.serve(port))
    control = server.url.replace(platform.PATH, "/_sandbox")
    out.print(f"[bold]Platform[/] webhook receiver (Standard Webhooks, verified) at {server.url}")
    out.print(f"  subscribe it: storelink webhooks add {server.url}, then give it the secret printed:")
    for line in (
        f'curl -X POST {control}/secrets -d \'{{"secret": "whsec_..."}}\'',
        f"curl '{control}/events?limit=20'",
        f'curl -X POST {control}/faults -d \'{{"next": [500, {{"latency": 3}}], "default": 200}}\'',
    ):
        out.print(f"  {escape(line)}", highlight=False)
    return ["WEBHOOK_ALLOW_PRIVATE_URLS=true"]


STARTERS: Final[dict[str, Callable[[contextlib.ExitStack, int, int, Console], list[str]]]] = {
    "shopify": _shopify,
    "walmart": _walmart,
    "platform": _platform,
}


@click.command()
@click.argument("emulators", nargs=-1, type=click.Choice(NAMES))
@click.option(
    "--port",
    type=click.IntRange(0, 65533),
    default=0,
    help="Port of the first emulator, the next ones on the ports after it (default: free ports).",
)
@click.option(
    "--products", type=click.IntRange(0, 100_000), default=20, show_default=True, help="Products per store."
)
@pass_ctx
def sandbox(obj: Context, emulators: tuple[str, ...], port: int, products: int) -> None:
    """Run the store emulators (Shopify, Walmart) and the platform's webhook receiver on their own, to drive
    Storelink against them by hand. Prints their addresses, the settings for Storelink and their control
    endpoints; serves until Ctrl-C."""
    chosen = [name for name in NAMES if name in emulators] or list(NAMES)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    settings = [f"PUBLIC_URL={STORELINK_WEB}"]
    for index, name in enumerate(chosen):
        settings += STARTERS[name](obj._stack, _port(port, index), products, console)
        console.print()
    console.print("[bold]Point Storelink at them[/] (in the shell of `storelink up` and of the CLI):")
    for line in dict.fromkeys(settings):
        console.print(f"  export {line}", highlight=False)
    console.print("Serving until Ctrl-C…")
    console.file.flush()
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(1)
