"""End to end: `storelink sandbox` runs the emulators alone, prints their addresses and the settings that
point Storelink at them, answers on its control endpoints (whose changes the faithful APIs then show), and
stops on SIGTERM with exit code 128 + 15 and nothing left running."""

from __future__ import annotations

import base64
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from connector.sandbox.shopify import GRAPHQL_PATH
from tests.e2e.test_demo import newcomer_env, storelink_script

pytestmark = pytest.mark.slow

READY = "Serving until Ctrl-C"


def _read_until_ready(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """What the sandbox printed up to its ready line (read by a thread: a pipe's buffered reader and a
    deadline do not mix)."""
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            assert proc.poll() is None, "".join(seen)
            continue
        if READY in seen[-1]:
            return "".join(seen)
    raise AssertionError("storelink sandbox did not get ready:\n" + "".join(seen))


def _address(output: str, name: str) -> str:
    found = re.search(rf"^{name} .* at (http://127\.0\.0\.1:\d+)", output, re.MULTILINE)
    assert found, output
    return found.group(1)


def test_the_sandbox_prints_its_emulators_obeys_their_control_endpoints_and_stops_on_sigterm(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.Popen(
        [storelink_script(), "sandbox", "shopify", "walmart", "platform", "--products", "3"],
        env=newcomer_env(home),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = _read_until_ready(proc)
        shop, seller = _address(output, "Shopify"), _address(output, "Walmart")
        receiver = _address(output, "Platform")
        assert f"export SHOPIFY_ADMIN_BASE_URL={shop}" in output
        assert f"export WALMART_BASE_URL={seller}" in output
        assert "export WEBHOOK_ALLOW_PRIVATE_URLS=true" in output
        _drive_the_shop(shop)
        _drive_the_seller(seller)
        events = requests.get(f"{receiver}/_sandbox/events", timeout=5)
        assert events.status_code == 200 and events.json()["events"] == []
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 128 + signal.SIGTERM
    assert [child for child in children if child.is_running()] == []
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{shop}/_sandbox", timeout=2)


def _drive_the_shop(shop: str) -> None:
    added = requests.post(
        f"{shop}/_sandbox/products",
        json={"title": "Sandbox Tee", "variants": [{"sku": "TEE-1", "price": "19.00", "available": 5}]},
        timeout=5,
    )
    assert added.status_code == 201, added.text
    stock = requests.post(f"{shop}/_sandbox/inventory", json={"sku": "TEE-1", "available": 2}, timeout=5)
    assert stock.json()["available"] == 2
    query = {"query": '{ productVariants(first: 5, query: "sku:TEE-1") { nodes { sku inventoryQuantity } } }'}
    admin = f"{shop}{GRAPHQL_PATH}"
    token = {"X-Shopify-Access-Token": "shpat_sandbox"}
    assert requests.post(f"{shop}/_sandbox/faults", json={"next": [503]}, timeout=5).status_code == 200
    assert requests.post(admin, json=query, headers=token, timeout=5).status_code == 503  # the fault, once
    answer = requests.post(admin, json=query, headers=token, timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["productVariants"]["nodes"] == [{"sku": "TEE-1", "inventoryQuantity": 2}]
    unknown = requests.post(f"{shop}/_sandbox/orders/1/refund", json={}, timeout=5)
    assert unknown.status_code == 404 and "error" in unknown.json()


def _drive_the_seller(seller: str) -> None:
    info = requests.get(f"{seller}/_sandbox", timeout=5).json()
    stock = requests.post(
        f"{seller}/_sandbox/inventory", json={"sku": "WM-SKU-000000", "quantity": 7}, timeout=5
    )
    assert stock.status_code == 200, stock.text
    basic = base64.b64encode(f"{info['client_id']}:{info['client_secret']}".encode()).decode()
    headers = {"WM_QOS.CORRELATION_ID": "sandbox-test", "WM_SVC.NAME": "Walmart Marketplace"}
    token = requests.post(
        f"{seller}/v3/token",
        data={"grant_type": "client_credentials"},
        headers={**headers, "Authorization": f"Basic {basic}", "Accept": "application/json"},
        timeout=5,
    ).json()["access_token"]
    read = requests.get(
        f"{seller}/v3/inventory",
        params={"sku": "WM-SKU-000000"},
        headers={**headers, "WM_SEC.ACCESS_TOKEN": token, "Accept": "application/json"},
        timeout=5,
    )
    assert read.status_code == 200, read.text
    assert read.json()["quantity"]["amount"] == 7
