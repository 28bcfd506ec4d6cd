"""The feed adapter end to end over files and mocked HTTP: formats, grouping, bad rows, errors, config."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest
import responses
import urllib3.exceptions
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.feed import client as feed_client
from adapters.feed import const
from adapters.feed.adapter import FeedAdapter
from connector.domain.catalog import InventoryLevel, Product, Variant
from connector.domain.errors import AuthError, PermanentError, RetryableError, ValidationError
from connector.domain.money import Money
from connector.domain.orders import ExternalOrderRef, Order
from connector.domain.ports import Capability, HttpOptions, StoreAdapter
from connector.domain.registry import adapter_class
from connector.infra import http
from connector.sandbox.feeds import COLUMNS, write_feed

FEED_URL = "https://feeds.example.com/catalog.csv"

CSV_FEED = """\
ID,Item_Group_ID, Title ,price,sale_price,availability,quantity,color,size,brand,gtin,image_link
A1,G1,Tee,20.00 USD,,in_stock,5,Red,S,Acme,111,https://img/1.jpg
A2,G1,Tee,20.00 USD,15.00 USD,in_stock,0,Red,M,Acme,112,https://img/2.jpg
B1,,Mug,8.50 USD,,out_of_stock,,,,Globex,,
C1,G3,Cap,12.00 USD,,in stock,,Blue,,,,
"""


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(http, "_sleep", recorded.append)
    return recorded


def make(url: str | Path, **config: object) -> FeedAdapter:
    return FeedAdapter({"url": str(url), **config}, {}, HttpOptions(allow_files=True))


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def catalog(adapter: FeedAdapter, since: datetime | None = None) -> list[Product]:
    return list(adapter.iter_catalog(since))


def variant_ids(products: list[Product]) -> list[list[str]]:
    return [[variant.external_id for variant in product.variants] for product in products]


# -- the port ---------------------------------------------------------------------------------------


def test_feed_adapter_implements_the_port_and_is_registered(tmp_path: Path) -> None:
    adapter = make(write(tmp_path, "f.csv", CSV_FEED))
    assert isinstance(adapter, StoreAdapter)
    assert adapter_class("feed") is FeedAdapter
    assert FeedAdapter.kind == "feed"
    assert FeedAdapter.capabilities == {
        Capability.CATALOG_FULL,
        Capability.INVENTORY_READ,
        Capability.WEBHOOKS,
    }


def test_unsupported_operations_raise_permanent_unsupported(tmp_path: Path) -> None:
    adapter = make(write(tmp_path, "f.csv", CSV_FEED))
    order = Order(id="o1", currency="USD", lines=())
    calls = [
        lambda: adapter.set_inventory([]),
        lambda: adapter.create_order(order, "key"),
        lambda: adapter.find_order("key"),
        lambda: adapter.cancel_order(ExternalOrderRef("1")),
    ]
    for call in calls:
        with pytest.raises(PermanentError) as caught:
            call()
        assert caught.value.code == "unsupported"
    with pytest.raises(PermanentError) as caught:
        adapter.parse_webhook("products/update", {}, b"{}")
    assert caught.value.code == "unknown_topic"
    # Without a webhook_secret credential nothing verifies.
    assert adapter.verify_webhook({"x-signature": "abc"}, b"{}") is False


# -- reading CSV ------------------------------------------------------------------------------------


def test_csv_rows_group_into_products(tmp_path: Path) -> None:
    products = catalog(make(write(tmp_path, "f.csv", CSV_FEED)))
    assert [product.external_id for product in products] == ["G1", "B1", "G3"]
    assert variant_ids(products) == [["A1", "A2"], ["B1"], ["C1"]]
    tee = products[0]
    assert tee.title == "Tee"
    assert tee.vendor == "Acme"
    assert tee.media == ("https://img/1.jpg", "https://img/2.jpg")
    first, second = tee.variants
    assert (first.title, first.price, first.compare_at_price, first.quantity) == (
        "Red / S",
        Money(2000, "USD"),
        None,
        5,
    )
    assert (second.price, second.compare_at_price, second.quantity) == (
        Money(1500, "USD"),
        Money(2000, "USD"),
        0,
    )
    mug = products[1].variants[0]
    assert mug.title == "Mug"
    assert mug.quantity == 0  # out_of_stock without a quantity
    assert products[2].variants[0].quantity is None  # in stock, not tracked


def test_group_split_across_the_file_is_yielded_twice(tmp_path: Path) -> None:
    text = "id,item_group_id,title,price\nA,G,T,1 USD\nB,H,U,1 USD\nC,G,T,1 USD\nD,G,T,1 USD\n"
    products = catalog(make(write(tmp_path, "f.csv", text)))
    assert [product.external_id for product in products] == ["G", "H", "G"]
    assert variant_ids(products) == [["A"], ["B"], ["C", "D"]]


def test_long_groups_are_yielded_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(const, "MAX_VARIANTS_PER_PRODUCT", 2)
    rows = "".join(f"V{i},G,T,1 USD\n" for i in range(5))
    products = catalog(make(write(tmp_path, "f.csv", "id,item_group_id,title,price\n" + rows)))
    assert variant_ids(products) == [["V0", "V1"], ["V2", "V3"], ["V4"]]
    assert {product.external_id for product in products} == {"G"}


def test_bad_rows_are_skipped_with_physical_line_numbers(tmp_path: Path) -> None:
    text = (
        "id,title,price,quantity,description\n"  # line 1
        'A,Alpha,1.00 USD,1,"two\nlines"\n'  # lines 2-3
        "B,Beta,abc,1,\n"  # line 4: bad price
        "\n"  # line 5: blank
        ",Gamma,1.00 USD,1,\n"  # line 6: no id
        "D,,1.00 USD,1,\n"  # line 7: no title
        "E,Epsilon,1.00 USD,-4,\n"  # line 8: negative quantity
        "F,Phi,1.00 USD,2.5,\n"  # line 9: fractional quantity
        "A,Alpha again,2.00 USD,1,\n"  # line 10: duplicate id
        "G,Gamma,1.00 USD,1,x,extra\n"  # line 11: too many fields
        ",,,,\n"  # line 12: blank spreadsheet row, ignored
        "H,Eta,3.00 USD,3,\n"  # line 13
    )
    adapter = make(write(tmp_path, "f.csv", text))
    products = catalog(adapter)
    assert variant_ids(products) == [["A"], ["H"]]
    assert products[0].description == "two\nlines"
    errors = adapter.iter_catalog_errors()
    assert [line for line, _ in errors] == [4, 6, 7, 8, 9, 10, 11]
    reasons = dict(errors)
    assert "price 'abc'" in reasons[4]
    assert reasons[6] == "id is missing"
    assert reasons[7] == "title is missing"
    assert "negative" in reasons[8]
    assert "not a whole number" in reasons[9]
    assert "duplicate id 'A'" in reasons[10]
    assert "6 fields" in reasons[11]
    assert adapter.skipped_count == 7


def test_a_row_with_an_unclosed_quote_is_reported_with_the_lines_it_swallowed(tmp_path: Path) -> None:
    text = (
        "id,title,price,quantity\n"  # line 1
        "A,Alpha,1.00 USD,1\n"  # line 2
        'B,"Beta,2.00 USD,1\n'  # line 3: the quote is never closed
        "C,Gamma,3.00 USD,1\n"  # line 4: swallowed
        "D,Delta,4.00 USD,1\n"  # line 5: swallowed
    )
    adapter = make(write(tmp_path, "f.csv", text))
    assert variant_ids(catalog(adapter)) == [["A"]]
    assert adapter.iter_catalog_errors() == [
        (
            3,
            "unclosed quote: a quoted field opened on line 3 runs on to line 5, swallowing the 2 line(s) after it as text",
        )
    ]
    assert adapter.skipped_count == 1


def test_csv_rows_of_every_shape_read_by_column_position(tmp_path: Path) -> None:
    text = (
        "ID, Title ,price,sale_price,availability,quantity,color,size,notes,,\n"  # no sku, mpn or gtin column
        "a1, Shirt , 12.50 usd ,,In Stock, 5 , Red ,,,,\n"  # line 2: spaces, lower-case currency
        "a2,Shirt,12.50 USD,10 USD,out_of_stock,,,XL\n"  # line 3: fewer fields than the header
        "a3,Shirt,7,,,,,,,, , \n"  # line 4: bare amount; blank fields past the header
        '"a4",Shirt,"' + "9" * 300 + '",,,,,,,,\n'  # line 5: a field over the csv module's limit
        ",,,,,,,,note only,,\n"  # line 6: only an unknown column filled: reported
        ",,,,,,,,,,\n"  # line 7: blank, ignored
        "a5,Cap,1.999 USD,,,,,,,,\n"  # line 8: too many decimals
        "a6,Cap,3 JPY,2 JPY,backorder,0,Blue,M,,,\n"  # line 9
    )
    adapter = make(write(tmp_path, "f.csv", text), default_currency="EUR")
    limit = csv.field_size_limit(200)
    try:
        products = catalog(adapter)
        levels = adapter.get_inventory(["a1", "a2", "a3", "a6"])
    finally:
        csv.field_size_limit(limit)
    assert [product.variants for product in products] == [
        (Variant("a1", "Red", Money(1250, "USD"), quantity=5, options=(("Color", "Red"),)),),
        (
            Variant(
                "a2",
                "XL",
                Money(1000, "USD"),
                compare_at_price=Money(1250, "USD"),
                quantity=0,
                options=(("Size", "XL"),),
            ),
        ),
        (Variant("a3", "Shirt", Money(700, "EUR")),),
        (
            Variant(
                "a6",
                "Blue / M",
                Money(2, "JPY"),
                compare_at_price=Money(3, "JPY"),
                quantity=0,
                options=(("Color", "Blue"), ("Size", "M")),
            ),
        ),
    ]
    assert [(product.title, product.media, product.vendor) for product in products] == [
        ("Shirt", (), None)
    ] * 3 + [("Cap", (), None)]
    assert adapter.iter_catalog_errors() == [
        (5, "unreadable row: field larger than field limit (200)"),
        (6, "id is missing"),
        (8, "price '1.999 USD' has more decimals than USD allows (2)"),
    ]
    assert adapter.skipped_count == 3
    assert adapter.catalog_skipped_refs() == {"a5"}
    assert levels == [
        InventoryLevel("a1", "default", 5),
        InventoryLevel("a2", "default", 0),
        InventoryLevel("a3", "default", None),
        InventoryLevel("a6", "default", 0),
    ]


FEED_VALUES = st.one_of(
    st.sampled_from(
        [
            "", " ", "A1", "A2", "G1", "Tee", "12.50 USD", " 3 USD ", "7", "1.999 USD", "12.5 usd", "2 JPY",
            "in stock", "out_of_stock", "later", "5", " 5 ", "-1", "2.0", "Red", " M ", "x.jpg", "a.jpg, b.jpg",
            "2025-01-01T00:00:00Z", "2025-02-30",
        ]
    ),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
)  # fmt: skip
FEED_ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["A1", "A2", "A3", " A4 ", "B1", ""]),
            "title": st.sampled_from(["Tee", " Mug ", ""]),
            "price": st.sampled_from(["12.50 USD", " 3 USD ", "7", "2 JPY", "12.5 usd", "1.999 USD", "abc"]),
        },
        optional={
            column: FEED_VALUES
            for column in ["item_group_id", "sale_price", "availability", "quantity", "color", "size", "sku",
                           "mpn", "gtin", "brand", "link", "image_link", "additional_image_link", "updated_at",
                           "notes"]
        },
    ),
    max_size=8,
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(FEED_ROWS, st.sampled_from([None, "EUR"]))
def test_csv_feed_reads_as_the_same_rows_in_json_lines(
    rows: list[dict[str, str]], currency: str | None
) -> None:
    columns = list(dict.fromkeys(["id", "title", "price", *(column for row in rows for column in row)]))
    with tempfile.TemporaryDirectory() as directory:
        csv_path = Path(directory) / "f.csv"
        with csv_path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            writer.writerows([row.get(column, "") for column in columns] for row in rows)
        jsonl_path = write(Path(directory), "f.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        config = {"default_currency": currency} if currency else {}
        from_csv, from_jsonl = make(csv_path, **config), make(jsonl_path, **config)
        assert catalog(from_csv) == catalog(from_jsonl)
    # One record a line: CSV positions count the header line too.
    assert [(line - 1, reason) for line, reason in from_csv.iter_catalog_errors()] == list(
        from_jsonl.iter_catalog_errors()
    )
    assert from_csv.skipped_count == from_jsonl.skipped_count
    assert from_csv.catalog_skipped_refs() == from_jsonl.catalog_skipped_refs()


def test_each_pass_parses_with_its_own_default_currency(tmp_path: Path) -> None:
    path = write(tmp_path, "f.csv", "id,title,price\nx,T,12.50\ny,U,12.50\n")
    euro, pound = make(path, default_currency="EUR"), make(path, default_currency="GBP")
    for _ in range(2):
        assert [product.variants[0].price for product in catalog(euro)] == [Money(1250, "EUR")] * 2
        assert [product.variants[0].price for product in catalog(pound)] == [Money(1250, "GBP")] * 2


def test_errors_are_capped_but_counted_and_reset_each_pass(tmp_path: Path) -> None:
    path = write_feed(tmp_path / "f.csv", 1100, bad_rows=range(1005))
    adapter = make(path)
    products = catalog(adapter)
    assert sum(len(product.variants) for product in products) == 95
    assert len(adapter.iter_catalog_errors()) == const.MAX_RECORDED_ERRORS
    assert adapter.skipped_count == 1005
    assert adapter.iter_catalog_errors()[0] == (2, "price 'abc' is not '<amount> <ISO currency>'")

    write_feed(path, 10)
    catalog(adapter)
    assert adapter.iter_catalog_errors() == []
    assert adapter.skipped_count == 0


def test_header_is_case_insensitive_and_trimmed(tmp_path: Path) -> None:
    products = catalog(make(write(tmp_path, "f.csv", " ID ,TITLE,Price \nx,T,1 EUR\n")))
    assert products[0].variants[0].price == Money(100, "EUR")


def test_utf8_bom_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"\xef\xbb\xbfid,title,price\nx,Caf\xc3\xa9,1 EUR\n")
    assert catalog(make(path))[0].title == "Café"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no header row"),
        ("id,title\nx,T\n", "lacks required column(s) price"),
        ("id,title,price,ID\n", "repeats column 'id'"),
    ],
)
def test_broken_header_fails_the_pass(tmp_path: Path, text: str, message: str) -> None:
    adapter = make(write(tmp_path, "f.csv", text))
    with pytest.raises(PermanentError, match=re.escape(message)) as caught:
        catalog(adapter)
    assert caught.value.code == "bad_header"
    with pytest.raises(PermanentError, match=re.escape(message)):
        adapter.check_connection()


def test_tab_separated_feed_with_the_wrong_delimiter_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "f.tsv", "id,title,price\nx,T,1 USD\n")
    with pytest.raises(PermanentError, match="read as tab-separated"):
        make(path).check_connection()


def test_wrong_encoding_is_permanent_and_configurable(tmp_path: Path) -> None:
    path = write(tmp_path, "f.csv", "id,title,price\nx,Caf\u00e9,1 EUR\n", encoding="latin-1")
    with pytest.raises(PermanentError) as caught:
        catalog(make(path))
    assert caught.value.code == "bad_encoding"
    assert catalog(make(path, encoding="latin-1"))[0].title == "Café"


def test_currency_exponents_and_default_currency(tmp_path: Path) -> None:
    text = "id,title,price,sale_price\nj,Yen,1500 JPY,1200 JPY\nk,Dinar,1.250 KWD,\nd,Bare,3.5,\nbad,Yen,15.5 JPY,\n"
    adapter = make(write(tmp_path, "f.csv", text), default_currency="gbp")
    variants = [product.variants[0] for product in catalog(adapter)]
    assert [variant.price for variant in variants] == [
        Money(1200, "JPY"),
        Money(1250, "KWD"),
        Money(350, "GBP"),
    ]
    assert variants[0].compare_at_price == Money(1500, "JPY")
    assert adapter.iter_catalog_errors() == [(5, "price '15.5 JPY' has more decimals than JPY allows (0)")]


def test_since_leaves_out_older_dated_rows(tmp_path: Path) -> None:
    text = (
        "id,item_group_id,title,price,updated_at\n"
        "a,G,T,1 USD,2025-01-01T00:00:00Z\n"
        "b,G,T,1 USD,2025-03-01T00:00:00Z\n"
        "c,H,U,1 USD,\n"
    )
    adapter = make(write(tmp_path, "f.csv", text))
    assert variant_ids(catalog(adapter, since=datetime(2025, 2, 1))) == [["b"], ["c"]]
    everything = catalog(adapter)
    assert variant_ids(everything) == [["a", "b"], ["c"]]
    assert everything[0].source_updated_at == datetime(2025, 3, 1, tzinfo=UTC)


def test_iteration_is_lazy_and_closes_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[IO[Any]] = []

    def tracking_open(*args: Any, **kwargs: Any) -> IO[Any]:
        handle: IO[Any] = open(*args, **kwargs)  # noqa: SIM115
        opened.append(handle)
        return handle

    monkeypatch.setattr(feed_client, "open", tracking_open, raising=False)
    path = write_feed(tmp_path / "f.csv", 30)
    stream = make(path).iter_catalog()
    assert opened == []  # nothing is read before the first product is asked for
    assert next(stream).external_id == "P-000001"
    assert len(opened) == 1
    assert not opened[0].closed
    stream.close()
    assert opened[0].closed


# -- other formats ------------------------------------------------------------------------------------


def test_tsv_and_txt_feeds(tmp_path: Path) -> None:
    text = 'id\titem_group_id\ttitle\tprice\tdescription\nA\tG\tTee\t2 USD\tsays "hi", twice\nB\tG\tTee\t3 USD\t\n'
    for name in ("f.tsv", "f.txt"):
        products = catalog(make(write(tmp_path, name, text)))
        assert variant_ids(products) == [["A", "B"]]
        assert products[0].description == 'says "hi", twice'


def test_jsonl_feed_with_line_numbers(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "A", "item_group_id": "G", "title": "Tee", "price": "2.00 USD", "quantity": 4}),
        "",
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"ID": "B", "Item_Group_Id": "G", "Title": "Tee", "price": 2.5, "quantity": 1}),
        json.dumps({"id": "C", "title": "Cup", "price": "1 USD", "shipping": {"country": "US"}}),
    ]
    adapter = make(write(tmp_path, "f.jsonl", "\n".join(lines) + "\n"), default_currency="USD")
    products = catalog(adapter)
    assert variant_ids(products) == [["A", "B"]]
    assert [variant.quantity for variant in products[0].variants] == [4, 1]
    assert products[0].variants[1].price == Money(250, "USD")
    errors = adapter.iter_catalog_errors()
    assert [line for line, _ in errors] == [3, 4, 6]
    assert errors[0][1].startswith("invalid JSON")
    assert "not an object" in errors[1][1]
    assert "'shipping' holds a dict" in errors[2][1]


@pytest.mark.parametrize("wrapped", [False, True])
def test_json_feed_array_or_items_object(tmp_path: Path, wrapped: bool) -> None:
    records = [
        {
            "id": "A",
            "item_group_id": "G",
            "title": "Tee",
            "price": "2.00 USD",
            "additional_image_link": ["x", "y"],
        },
        {"id": "B", "item_group_id": "G", "title": "Tee", "price": "bad"},
        {"id": "C", "item_group_id": "G", "title": "Tee", "price": "3.00 USD", "quantity": 7},
        "not an object",
    ]
    document = {"meta": {"n": 4}, "items": records} if wrapped else records
    path = write(tmp_path, "f.json", "\ufeff  \n" + json.dumps(document, indent=2))
    adapter = make(path)
    products = catalog(adapter)
    assert variant_ids(products) == [["A", "C"]]
    assert products[0].media == ("x", "y")
    assert products[0].variants[1].quantity == 7
    assert [position for position, _ in adapter.iter_catalog_errors()] == [2, 4]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"products": []}', "no items array"),
        ('[{"id": "A", "title": "T", "price": "1 USD"}, {"id": ', "not valid JSON"),
        ('"just a string"', "must be an array"),
        ("   ", "empty"),
    ],
)
def test_broken_json_documents_fail_the_pass(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PermanentError, match=message) as caught:
        catalog(make(write(tmp_path, "f.json", text)))
    assert caught.value.code == "bad_json"


# -- inventory and connection ---------------------------------------------------------------------------


def test_get_inventory_reads_the_asked_variants(tmp_path: Path) -> None:
    text = CSV_FEED + "A1,G1,Dup,1.00 USD,,in_stock,99,,,,,\n"
    adapter = make(write(tmp_path, "f.csv", text), location="warehouse-1")
    levels = adapter.get_inventory(["C1", "B1", "missing", "A1"])
    assert [(level.variant_external_id, level.available) for level in levels] == [
        ("C1", None),
        ("B1", 0),
        ("A1", 5),
    ]
    assert {level.location_ref for level in levels} == {"warehouse-1"}


def test_get_inventory_of_nothing_does_not_open_the_feed(tmp_path: Path) -> None:
    assert make(tmp_path / "absent.csv").get_inventory([]) == []


def test_check_connection_reads_the_header(tmp_path: Path) -> None:
    make(write(tmp_path, "f.csv", CSV_FEED)).check_connection()
    make(write(tmp_path, "empty.csv", "id,title,price\n")).check_connection()


def test_missing_file_is_permanent(tmp_path: Path) -> None:
    adapter = make(tmp_path / "absent.csv")
    with pytest.raises(PermanentError) as caught:
        adapter.check_connection()
    assert caught.value.code == "feed_not_found"
    assert "absent.csv" in caught.value.message


def test_files_can_be_disabled(tmp_path: Path) -> None:
    path = write(tmp_path, "f.csv", CSV_FEED)
    adapter = FeedAdapter({"url": str(path)}, {}, HttpOptions(allow_files=False))
    with pytest.raises(PermanentError) as caught:
        catalog(adapter)
    assert caught.value.code == "files_disabled"


# -- HTTP -----------------------------------------------------------------------------------------------


@responses.activate
def test_http_feed_streams_with_user_agent_and_basic_auth() -> None:
    responses.add(responses.GET, FEED_URL, body=CSV_FEED, content_type="text/csv")
    adapter = FeedAdapter(
        {"url": FEED_URL}, {"username": "merchant", "password": "s3cret"}, HttpOptions(user_agent="UA/1")
    )
    assert variant_ids(catalog(adapter)) == [["A1", "A2"], ["B1"], ["C1"]]
    request = responses.calls[0].request
    assert request.headers["User-Agent"] == "UA/1"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"merchant:s3cret").decode()


@responses.activate
def test_http_feed_bearer_token() -> None:
    responses.add(responses.GET, FEED_URL, body=CSV_FEED)
    FeedAdapter({"url": FEED_URL}, {"token": "tok"}, HttpOptions()).check_connection()
    assert responses.calls[0].request.headers["Authorization"] == "Bearer tok"


def test_http_feed_is_not_read_whole(tmp_path: Path) -> None:
    path = write_feed(tmp_path / "big.csv", 20_000)
    size = path.stat().st_size
    with path.open("rb") as body, responses.RequestsMock() as mock:
        mock.add(responses.GET, FEED_URL, body=body)
        stream = make(FEED_URL).iter_catalog()
        assert next(stream).external_id == "P-000001"
        assert body.tell() < size / 4
        stream.close()
        assert body.closed


@responses.activate
def test_http_json_feed() -> None:
    url = "https://feeds.example.com/export?format=json&token=abc"
    responses.add(
        responses.GET, url, body=json.dumps({"items": [{"id": "A", "title": "T", "price": "1 USD"}]})
    )
    assert variant_ids(catalog(make(url, format="json"))) == [["A"]]


@responses.activate
def test_http_404_is_permanent_and_not_retried() -> None:
    responses.add(responses.GET, FEED_URL, status=404, body="<h1>Not Found</h1>")
    with pytest.raises(PermanentError) as caught:
        make(FEED_URL).check_connection()
    assert not isinstance(caught.value, RetryableError)
    assert "404" in caught.value.message
    assert "Not Found" not in caught.value.message  # what a feed host answers is never echoed
    assert len(responses.calls) == 1


@responses.activate
def test_http_401_is_auth_error() -> None:
    responses.add(responses.GET, FEED_URL, status=401)
    with pytest.raises(AuthError):
        catalog(make(FEED_URL))


@responses.activate
def test_http_503_is_retried_then_raised(no_sleep: list[float]) -> None:
    responses.add(responses.GET, FEED_URL, status=503)
    with pytest.raises(RetryableError) as caught:
        catalog(make(FEED_URL))
    assert "503" in caught.value.message
    assert len(responses.calls) == 3
    assert len(no_sleep) == 2


@responses.activate
def test_http_503_then_success_recovers() -> None:
    responses.add(responses.GET, FEED_URL, status=503)
    responses.add(responses.GET, FEED_URL, body=CSV_FEED)
    assert len(catalog(make(FEED_URL))) == 3
    assert len(responses.calls) == 2


@responses.activate
def test_http_429_honours_short_retry_after(no_sleep: list[float]) -> None:
    responses.add(responses.GET, FEED_URL, status=429, headers={"Retry-After": "2"})
    responses.add(responses.GET, FEED_URL, body=CSV_FEED)
    assert len(catalog(make(FEED_URL))) == 3
    assert no_sleep == [2.0]


@responses.activate
def test_http_429_with_long_retry_after_goes_back_to_the_job(no_sleep: list[float]) -> None:
    responses.add(responses.GET, FEED_URL, status=429, headers={"Retry-After": "120"})
    with pytest.raises(RetryableError) as caught:
        make(FEED_URL).check_connection()
    assert caught.value.retry_after == 120
    assert len(responses.calls) == 1
    assert no_sleep == []


class _DroppedConnection(io.BufferedReader):
    """A response body whose connection drops after the first read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.reads = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise urllib3.exceptions.ProtocolError("Connection broken: reset by peer")
        return super().read(200)


def test_http_connection_dropped_mid_stream_is_retryable() -> None:
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, FEED_URL, body=_DroppedConnection(CSV_FEED.encode() * 50))
        with pytest.raises(RetryableError):
            catalog(make(FEED_URL))


@responses.activate
def test_http_connection_refused_is_retryable() -> None:
    from requests import ConnectionError as RequestsConnectionError

    responses.add(responses.GET, FEED_URL, body=RequestsConnectionError("refused"))
    with pytest.raises(RetryableError):
        make(FEED_URL).check_connection()
    assert len(responses.calls) == 3


# -- configuration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "url is required"),
        ({"url": "   "}, "url is required"),
        ({"url": 42}, "url must be text"),
        ({"url": "ftp://feeds.example.com/f.csv"}, "scheme 'ftp' is not supported"),
        ({"url": "https:///f.csv"}, "has no host"),
        ({"url": "https://u:p@feeds.example.com/f.csv"}, "must not embed credentials"),
        ({"url": "file://otherhost/f.csv"}, "local file"),
        ({"url": "/data/feed.xml"}, "cannot tell the feed format"),
        ({"url": "/data/feed.csv", "format": "xml"}, "format 'xml' is not one of"),
        ({"url": "/data/feed.csv", "default_currency": "dollars"}, "default_currency 'DOLLARS'"),
        ({"url": "/data/feed.csv", "encoding": "klingon"}, "encoding 'klingon' is unknown"),
        ({"url": "/data/feed.csv", "location": "x" * 201}, "location is longer"),
        ({"url": "/data/feed.csv", "fromat": "csv"}, "unknown feed config key(s): fromat"),
    ],
)
def test_validate_config_errors(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        FeedAdapter.validate_config(config)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("url", "fmt"),
    [
        ("https://feeds.example.com/f.csv", "csv"),
        ("https://feeds.example.com/export?id=1", "csv"),
        ("https://feeds.example.com/f.JSON", "json"),
        ("/data/f.tsv", "tsv"),
        ("/data/f.txt", "tsv"),
        ("/data/f.jsonl", "jsonl"),
        ("/data/f.ndjson", "jsonl"),
        ("file:///data/f.json", "json"),
    ],
)
def test_format_is_inferred(url: str, fmt: str) -> None:
    assert FeedAdapter.validate_config({"url": url})["format"] == fmt


def test_validate_config_normalizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = FeedAdapter.validate_config(
        {
            "url": " HTTPS://Feeds.Example.COM:443/a/f.txt?token=x#top ",
            "format": " TSV ",
            "default_currency": "eur",
            "location": " shelf ",
        }
    )
    assert config == {
        "url": "https://feeds.example.com/a/f.txt?token=x",
        "format": "tsv",
        "default_currency": "EUR",
        "location": "shelf",
        "encoding": const.DEFAULT_ENCODING,
    }
    assert FeedAdapter.validate_config({"url": "http://h:8080"})["url"] == "http://h:8080/"
    defaults = FeedAdapter.validate_config({"url": "/data/f.csv"})
    assert defaults["location"] == "default"
    assert defaults["default_currency"] is None

    monkeypatch.chdir(tmp_path)
    relative = FeedAdapter.store_ref({"url": "feeds/my feed.csv"})
    assert relative == (tmp_path / "feeds" / "my feed.csv").as_uri()
    assert FeedAdapter.store_ref({"url": str(tmp_path / "feeds" / "my feed.csv")}) == relative
    assert FeedAdapter.store_ref({"url": relative}) == relative


def test_file_url_feeds_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, "with space.csv", CSV_FEED)
    assert len(catalog(make(path.as_uri()))) == 3


def test_half_basic_auth_credentials_are_refused() -> None:
    with pytest.raises(ValidationError, match="username and password"):
        FeedAdapter({"url": FEED_URL}, {"username": "only"}, HttpOptions())


# -- the sandbox generator ----------------------------------------------------------------------------------


def test_write_feed_is_deterministic_and_streams_every_format(tmp_path: Path) -> None:
    first = write_feed(tmp_path / "a.csv", 50, seed=3)
    second = write_feed(tmp_path / "b.csv", 50, seed=3)
    other = write_feed(tmp_path / "c.csv", 50, seed=4)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    assert first.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert not list(tmp_path.glob("*.partial"))

    results = {}
    for fmt in ("csv", "tsv", "jsonl", "json"):
        path = write_feed(tmp_path / f"feed.{fmt}", 50, fmt=fmt, seed=3, variants_per_product=4)
        adapter = make(path)
        results[fmt] = catalog(adapter)
        assert adapter.iter_catalog_errors() == []
    assert results["csv"] == results["tsv"] == results["jsonl"] == results["json"]
    products = results["csv"]
    assert len(products) == 13
    assert [len(product.variants) for product in products] == [4] * 12 + [2]
    variant = products[0].variants[0]
    assert variant.external_id == "SKU-000001"
    assert products[0].external_id == "P-000001"
    assert variant.barcode is not None and len(variant.barcode) == 13
    assert variant.sku == "MPN-000001"
    assert variant.options and variant.options[0][0] == "Color"


def test_write_feed_price_shift_changes_prices_only(tmp_path: Path) -> None:
    before = catalog(make(write_feed(tmp_path / "a.csv", 30)))
    after = catalog(make(write_feed(tmp_path / "b.csv", 30, price_shift=100)))
    assert variant_ids(before) == variant_ids(after)
    old = [variant for product in before for variant in product.variants]
    new = [variant for product in after for variant in product.variants]
    assert all(
        (n.price.minor, n.compare_at_price) != (o.price.minor, o.compare_at_price)
        for o, n in zip(old, new, strict=True)
    )
    assert [(o.title, o.quantity, o.barcode) for o in old] == [(n.title, n.quantity, n.barcode) for n in new]


def test_write_feed_bad_rows_are_reported_at_their_lines(tmp_path: Path) -> None:
    adapter = make(write_feed(tmp_path / "f.csv", 20, bad_rows=[0, 7]))
    assert sum(len(product.variants) for product in catalog(adapter)) == 18
    assert [line for line, _ in adapter.iter_catalog_errors()] == [2, 9]

    json_adapter = make(write_feed(tmp_path / "f.json", 20, fmt="json", bad_rows=[0, 7]))
    catalog(json_adapter)
    assert [index for index, _ in json_adapter.iter_catalog_errors()] == [1, 8]


def test_write_feed_currency_exponent(tmp_path: Path) -> None:
    products = catalog(make(write_feed(tmp_path / "f.csv", 6, currency="JPY")))
    assert {variant.price.currency for product in products for variant in product.variants} == {"JPY"}


def test_write_feed_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fmt"):
        write_feed(tmp_path / "f.xml", 1, fmt="xml")
    with pytest.raises(ValueError, match="variants_per_product"):
        write_feed(tmp_path / "f.csv", 1, variants_per_product=0)
    assert not (tmp_path / "f.csv").exists()
    assert not list(tmp_path.glob("*.partial"))
