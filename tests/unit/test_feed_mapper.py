"""Feed rows to domain products and variants: the pure mapping functions of adapters.feed.mapper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.feed import mapper
from adapters.feed.mapper import Availability, parse_row
from connector.domain.catalog import ProductStatus
from connector.domain.money import Money

FULL_ROW = {
    "id": "SKU-1",
    "item_group_id": "P-1",
    "title": "Linen shirt",
    "description": "  Breathable.  ",
    "link": "https://shop.example.com/p/1",
    "image_link": "https://img.example.com/1.jpg",
    "additional_image_link": "https://img.example.com/2.jpg, https://img.example.com/1.jpg,,https://img.example.com/3.jpg",
    "price": "49.90 EUR",
    "sale_price": "",
    "availability": "in stock",
    "quantity": "7",
    "gtin": "4006381333931",
    "brand": "Acme",
    "mpn": "MPN-1",
    "sku": "ACME-SHIRT-RED-M",
    "color": "Red",
    "size": "M",
    "updated_at": "2025-03-01T10:00:00+02:00",
}


def row(**values: str) -> dict[str, str]:
    base = {"id": "SKU-1", "title": "Shirt", "price": "10.00 USD"}
    base.update(values)
    return base


def test_full_row_maps_every_column() -> None:
    parts = parse_row(FULL_ROW)
    variant = parts.variant
    assert parts.product_id == "P-1"
    assert parts.title == "Linen shirt"
    assert parts.description == "Breathable."
    assert parts.vendor == "Acme"
    assert parts.url == "https://shop.example.com/p/1"
    assert parts.media == (
        "https://img.example.com/1.jpg",
        "https://img.example.com/2.jpg",
        "https://img.example.com/3.jpg",
    )
    assert parts.updated_at == datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    assert variant.external_id == "SKU-1"
    assert variant.title == "Red / M"
    assert variant.options == (("Color", "Red"), ("Size", "M"))
    assert variant.price == Money(4990, "EUR")
    assert variant.compare_at_price is None
    assert variant.sku == "ACME-SHIRT-RED-M"
    assert variant.barcode == "4006381333931"
    assert variant.quantity == 7
    assert variant.status is ProductStatus.ACTIVE


def test_minimal_row_uses_the_row_id_as_product_and_title_as_variant_title() -> None:
    parts = parse_row(row())
    assert parts.product_id == "SKU-1"
    assert parts.variant.title == "Shirt"
    assert parts.variant.options == ()
    assert parts.variant.sku is None
    assert parts.variant.barcode is None
    assert parts.vendor is None
    assert parts.url is None
    assert parts.media == ()
    assert parts.updated_at is None
    assert parts.variant.quantity is None


def test_sku_falls_back_to_mpn() -> None:
    assert parse_row(row(mpn="M-9")).variant.sku == "M-9"
    assert parse_row(row(mpn="M-9", sku="S-9")).variant.sku == "S-9"


def test_single_option_becomes_the_variant_title() -> None:
    parts = parse_row(row(size="XL"))
    assert parts.variant.title == "XL"
    assert parts.variant.options == (("Size", "XL"),)


def test_lower_sale_price_sells_and_price_becomes_compare_at() -> None:
    variant = parse_row(row(price="20.00 USD", sale_price="15.00 USD")).variant
    assert variant.price == Money(1500, "USD")
    assert variant.compare_at_price == Money(2000, "USD")


@pytest.mark.parametrize("sale", ["20.00 USD", "25.00 USD", "  "])
def test_sale_price_not_lower_is_ignored(sale: str) -> None:
    variant = parse_row(row(price="20.00 USD", sale_price=sale)).variant
    assert variant.price == Money(2000, "USD")
    assert variant.compare_at_price is None


def test_sale_price_in_another_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="sale_price currency EUR differs"):
        parse_row(row(price="20.00 USD", sale_price="15.00 EUR"))


def test_bad_sale_price_names_the_sale_price_column() -> None:
    with pytest.raises(ValueError, match=r"^sale_price"):
        parse_row(row(sale_price="cheap"))


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("1500 JPY", Money(1500, "JPY")),
        ("1.234 KWD", Money(1234, "KWD")),
        ("0.5 usd", Money(50, "USD")),
        ("12 EUR", Money(1200, "EUR")),
    ],
)
def test_currency_exponents(price: str, expected: Money) -> None:
    assert parse_row(row(price=price)).variant.price == expected


@pytest.mark.parametrize("price", ["15.5 JPY", "1.999 USD", "1.2345 KWD"])
def test_more_decimals_than_the_currency_has_is_refused(price: str) -> None:
    with pytest.raises(ValueError, match="more decimals"):
        parse_row(row(price=price))


def test_default_currency_applies_to_bare_amounts_only() -> None:
    assert parse_row(row(price="12.99"), "CAD").variant.price == Money(1299, "CAD")
    assert parse_row(row(price="12.99 USD"), "CAD").variant.price == Money(1299, "USD")
    with pytest.raises(ValueError, match="ISO currency"):
        parse_row(row(price="12.99"))


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"id": " "}, "id is missing"),
        ({"title": ""}, "title is missing"),
        ({"price": ""}, "price is missing"),
        ({"price": "abc"}, "not '<amount> <ISO currency>'"),
        ({"price": "-1.00 USD"}, "not a decimal number|negative"),
        ({"price": "1e3 USD"}, "not a decimal number"),
        ({"price": "10 DOLLARS"}, "3-letter"),
        ({"price": "9" * 50 + " USD"}, "too long"),
        ({"price": "99999999999999999999999999999999 USD"}, "out of range|too large"),
        ({"quantity": "-2"}, "quantity '-2' is negative"),
        ({"quantity": "1.5"}, "not a whole number"),
        ({"quantity": "many"}, "not a whole number"),
        ({"quantity": "99999999999"}, "too large"),
        ({"availability": "limited"}, "availability 'limited' is not one of"),
        ({"updated_at": "yesterday"}, "updated_at 'yesterday'"),
        ({"id": "x" * 256}, "id is longer than 255"),
        ({"item_group_id": "g" * 256}, "item_group_id is longer than 255"),
        ({"gtin": "1" * 65}, "gtin is longer than 64"),
    ],
)
def test_unusable_rows_raise_value_error_with_a_reason(values: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_row(row(**values))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in_stock", Availability.IN_STOCK),
        ("In Stock", Availability.IN_STOCK),
        ("", Availability.IN_STOCK),
        ("out_of_stock", Availability.OUT_OF_STOCK),
        ("out of stock", Availability.OUT_OF_STOCK),
        ("preorder", Availability.PREORDER),
        ("BACKORDER", Availability.BACKORDER),
    ],
)
def test_availability_values(text: str, expected: Availability) -> None:
    assert mapper.parse_availability(text) is expected


@pytest.mark.parametrize(
    ("quantity", "availability", "expected"),
    [
        ("", "out_of_stock", 0),
        ("", "out of stock", 0),
        ("", "in_stock", None),
        ("", "preorder", None),
        ("", "", None),
        ("0", "in_stock", 0),
        ("12", "out_of_stock", 12),
        (" 5 ", "", 5),
        ("3.0", "", 3),
        ("-0", "", 0),
    ],
)
def test_quantity_rules(quantity: str, availability: str, expected: int | None) -> None:
    assert parse_row(row(quantity=quantity, availability=availability)).variant.quantity == expected


def test_updated_at_is_utc() -> None:
    assert mapper.parse_updated_at("2025-01-02T03:04:05") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert mapper.parse_updated_at("2025-01-02T03:04:05Z") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    stamp = mapper.parse_updated_at("2025-01-02T03:04:05-05:00")
    assert stamp == datetime(2025, 1, 2, 8, 4, 5, tzinfo=UTC)
    assert stamp is not None and stamp.utcoffset() == timedelta(0)
    assert mapper.parse_updated_at(" ") is None


def test_normalize_header_trims_lowercases_and_refuses_repeats() -> None:
    assert mapper.normalize_header([" ID", "Title ", "PRICE"]) == ["id", "title", "price"]
    with pytest.raises(ValueError, match="repeats column 'id'"):
        mapper.normalize_header(["id", " ID "])


def test_normalize_record_turns_json_values_into_text() -> None:
    record = {
        " ID ": 17,
        "Price": Decimal("12.50"),
        "quantity": 3,
        "additional_image_link": ["a.jpg", "b.jpg"],
        "brand": None,
        "flag": True,
    }
    assert mapper.normalize_record(record) == {
        "id": "17",
        "price": "12.50",
        "quantity": "3",
        "additional_image_link": "a.jpg,b.jpg",
        "brand": "",
        "flag": "true",
    }
    with pytest.raises(ValueError, match="'shipping' holds a dict"):
        mapper.normalize_record({"shipping": {"country": "US"}})
    with pytest.raises(ValueError, match="repeats column 'id'"):
        mapper.normalize_record({"id": "1", "ID": "2"})


def test_build_product_merges_group_rows() -> None:
    first = parse_row(
        row(id="A", item_group_id="G", title="Tee", image_link="1.jpg", updated_at="2025-01-01T00:00:00Z")
    )
    second = parse_row(
        row(id="B", item_group_id="G", title="Tee (B)", image_link="2.jpg", updated_at="2025-02-01T00:00:00Z")
    )
    third = parse_row(row(id="C", item_group_id="G", title="Tee", image_link="1.jpg"))
    product = mapper.build_product([first, second, third])
    assert product.external_id == "G"
    assert product.title == "Tee"
    assert [variant.external_id for variant in product.variants] == ["A", "B", "C"]
    assert product.media == ("1.jpg", "2.jpg")
    assert product.source_updated_at == datetime(2025, 2, 1, tzinfo=UTC)
    assert product.status is ProductStatus.ACTIVE
    with pytest.raises(ValueError):
        mapper.build_product([])


# -- properties ---------------------------------------------------------------------------------------

COLUMNS = [
    "id", "item_group_id", "title", "price", "sale_price", "availability", "quantity", "gtin", "brand",
    "mpn", "sku", "color", "size", "updated_at", "image_link", "additional_image_link", "link",
]  # fmt: skip
CURRENCIES = ["USD", "EUR", "JPY", "KRW", "KWD", "BHD", "GBP"]


@given(st.dictionaries(st.sampled_from(COLUMNS), st.text(max_size=40)), st.sampled_from([None, "USD", "JPY"]))
def test_parse_row_only_ever_raises_value_error(values: dict[str, str], currency: str | None) -> None:
    try:
        parts = parse_row(values, currency)
    except ValueError as exc:
        assert str(exc)
    else:
        assert parts.variant.external_id == values["id"].strip()
        assert parts.variant.price.minor >= 0
        assert parts.variant.quantity is None or parts.variant.quantity >= 0


@given(st.sampled_from(CURRENCIES), st.integers(min_value=0, max_value=10**15))
def test_price_round_trips_through_the_feed_format(currency: str, minor: int) -> None:
    money = Money(minor, currency)
    assert parse_row(row(price=str(money))).variant.price == money


@given(
    st.sampled_from(CURRENCIES),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=10**9),
)
def test_selling_price_never_exceeds_compare_at(currency: str, price: int, sale: int) -> None:
    variant = parse_row(row(price=str(Money(price, currency)), sale_price=str(Money(sale, currency)))).variant
    assert variant.price.minor == min(price, sale)
    if variant.compare_at_price is not None:
        assert variant.price.minor < variant.compare_at_price.minor
        assert variant.compare_at_price.minor == price
    else:
        assert sale >= price


def test_offset_free_and_offset_times_compare() -> None:
    east = datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=9)))
    parsed = mapper.parse_updated_at(east.isoformat())
    assert parsed == east


# -- the fast paths agree with the general ones ----------------------------------------------------------

PRICE_TEXT = st.one_of(
    st.text(alphabet="0123456789.,- \tuUsSdDJPYKWEÜ٣²", max_size=12),
    st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,3})? (USD|JPY|KWD|EUR)", fullmatch=True),
    st.from_regex(r"[0-9]{1,22}(\.[0-9]{0,4})?( (USD|JPY|KWD|usd|EUR|US))?", fullmatch=True),
)


@settings(max_examples=500)
@given(PRICE_TEXT, st.sampled_from([None, "", "USD", "JPY", "KWD", "usd", "ÜSD", "USD\n"]))
def test_plain_prices_read_as_parse_money_does(text: str, currency: str | None) -> None:
    text = text.strip()
    reference = mapper._money.__wrapped__  # parse_money with the column's checks, uncached
    try:
        expected: Money | str = reference(text, currency, "sale_price")
    except ValueError as exc:
        expected = str(exc)
    try:
        found: Money | str = mapper._plain_money(text, currency, "sale_price")
    except ValueError as exc:
        found = str(exc)
    assert found == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.99 USD", Money(1299, "USD")),
        ("0012.5 USD", Money(1250, "USD")),
        ("12.05 USD", Money(1205, "USD")),
        ("1500 JPY", Money(1500, "JPY")),
        ("1.25 KWD", Money(1250, "KWD")),
        ("0.05 KWD", Money(50, "KWD")),
        ("7", Money(700, "EUR")),
        ("9" * 16 + " USD", Money(int("9" * 16) * 100, "USD")),
    ],
)
def test_plain_prices(text: str, expected: Money) -> None:
    assert mapper._plain_money(text, "EUR", "price") == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("15.5 JPY", "price '15.5 JPY' has more decimals than JPY allows (0)"),
        ("1. USD", "price amount '1.' is not a decimal number"),
        ("99999999999999999999 USD", "price '99999999999999999999 USD' is too large"),
        ("9" * 41, "price '" + "9" * 40 + "'... is too long"),
    ],
)
def test_prices_outside_the_plain_shape_keep_their_messages(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        mapper._plain_money(text, "EUR", "price")
    assert str(caught.value) == reason


MEMO_VALUES = st.one_of(
    st.sampled_from(["", " ", "A", "B ", "Red", "Red ", " M", "12.50 USD", "12.50", " 12.50 USD", "3 JPY", "3",
                     "1.5 JPY", "12.50 usd", "in stock", "7"]),
    st.text(max_size=12),
)  # fmt: skip


OPTION_VALUES = st.sampled_from(["", " ", "Red", "Red ", "Blue", "M", " M", "L"])
MEMO_ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["A", "B ", "C", ""]),
            "title": st.sampled_from(["Tee", "Mug", "Cap", " "]),
            "price": st.sampled_from(["12.50 USD", "12.50", " 3 JPY", "3", "3 JPY", "1.5 JPY", "12.50 usd"]),
        },
        optional={
            "color": OPTION_VALUES,
            "size": OPTION_VALUES,
            **{column: MEMO_VALUES for column in COLUMNS if column not in ("id", "title", "price")},
        },
    ),
    max_size=8,
)


@settings(max_examples=300)
@given(MEMO_ROWS, st.sampled_from([None, "USD", "JPY"]))
def test_a_shared_memo_changes_no_result(rows: list[dict[str, str]], currency: str | None) -> None:
    def outcome(values: dict[str, str], memo: mapper.ParseMemo | None) -> object:
        try:
            return parse_row(values, currency, memo)
        except ValueError as exc:
            return str(exc)

    memo = mapper.ParseMemo()
    for values in rows * 2:  # the second time round, what the memo holds is read back
        assert outcome(values, memo) == outcome(values, None)


def test_memo_shares_repeated_prices_and_options_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    memo = mapper.ParseMemo()
    first = parse_row(row(id="A", price="10.00 USD", color="Red", size="M"), None, memo)
    second = parse_row(row(id="B", price="10.00 USD", color="Red", size="M"), None, memo)
    assert second.variant.price is first.variant.price
    assert second.variant.options is first.variant.options
    assert second.variant.title == "Red / M"
    other_size = parse_row(row(id="E", price="10.00 USD", color="Red", size="L"), None, memo)
    assert (other_size.variant.title, other_size.variant.options) == (
        "Red / L",
        (("Color", "Red"), ("Size", "L")),
    )
    # Options as written map to the same parsed options whatever the row's title.
    plain = parse_row(row(id="C", title="Mug", color=" ", size=""), None, memo)
    again = parse_row(row(id="D", title="Cup", color=" ", size=""), None, memo)
    assert (plain.variant.title, again.variant.title) == ("Mug", "Cup")
    assert again.variant.options == ()

    monkeypatch.setattr(mapper, "MAX_MEMO_ENTRIES", 1)
    small = mapper.ParseMemo()
    for index in range(3):
        parts = parse_row(row(id=str(index), price=f"{index}.00 USD", color=str(index)), None, small)
        assert parts.variant.price == Money(index * 100, "USD")
    assert len(small.prices) == 1
    assert len(small.options) == 1


@pytest.mark.parametrize(
    ("image", "additional", "expected"),
    [
        ("a.jpg", "", ("a.jpg",)),
        ("a.jpg", " b.jpg ", ("a.jpg", "b.jpg")),
        ("a.jpg", "a.jpg", ("a.jpg",)),
        ("", "b.jpg", ("b.jpg",)),
        (" ", " ", ()),
        ("a.jpg", "b.jpg, a.jpg,,c.jpg", ("a.jpg", "b.jpg", "c.jpg")),
        ("", " , ", ()),
    ],
)
def test_split_links(image: str, additional: str, expected: tuple[str, ...]) -> None:
    assert mapper.split_links(image, additional) == expected


def test_field_index_reads_header_positions_and_absent_columns_as_empty() -> None:
    header = ["title", "", "id", "price", "notes", "color"]
    pick, width = mapper.field_index(header)
    assert width == len(header) + 1  # absent columns read the padding past the header
    record = ["Tee", "x", "T-1", "5 USD", "n", "Red"]
    values = dict(zip(mapper.FIELDS, pick([*record, *[""] * (width - len(record))]), strict=True))
    assert (values["id"], values["title"], values["price"], values["color"]) == ("T-1", "Tee", "5 USD", "Red")
    assert {values[column] for column in mapper.FIELDS if column not in header} == {""}
    assert mapper.parse_fields(pick([*record, ""])) == parse_row(dict(zip(header, record, strict=True)))

    full = mapper.field_index([*mapper.FIELDS, "extra"])
    assert full.width == len(mapper.FIELDS)
