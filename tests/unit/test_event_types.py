"""Every domain event type is named once, in `connector.domain.event_types`, and the core publishes only those."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from connector.domain import event_types
from connector.infra import outbox
from connector.orders import push

ROOT = Path(__file__).resolve().parents[2]
# Store emulators speak the stores' own vocabularies (a feed's `inventory.updated` push topic), not these.
SOURCES = [
    path
    for package in ("connector", "webhooks")
    for path in (ROOT / package).rglob("*.py")
    if "sandbox" not in path.parts and path.name != "event_types.py"
]


def test_the_list_is_complete_and_unique() -> None:
    names = {value for name, value in vars(event_types).items() if name.isupper() and isinstance(value, str)}
    assert len(event_types.ALL) == len(set(event_types.ALL))
    assert set(event_types.ALL) == names
    assert all(re.fullmatch(r"[a-z]+\.[a-z_]+", name) for name in event_types.ALL)
    assert outbox.PRODUCT_UPDATED is event_types.PRODUCT_UPDATED
    assert push.ORDER_CONFIRMED is event_types.ORDER_CONFIRMED


def test_no_module_spells_an_event_type_itself() -> None:
    assert SOURCES
    spelled = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value}"
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and node.value in event_types.ALL
    ]
    assert spelled == []


def test_documented_outbound_events_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("Outbound events") :].split("\n\n", 1)[0]
    documented = set(re.findall(r"`([a-z]+\.[a-z_]+)`", paragraph))
    assert documented and documented <= set(event_types.ALL)
