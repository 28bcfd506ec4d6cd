"""The suite's shared URL builders (`tests/conftest.py`): apps made in one test process reuse the builders compiled
for a rule text, and every rule still builds the URL werkzeug's own builders build."""

from __future__ import annotations

from werkzeug.routing import Map, Rule


def _map() -> Map:
    return Map(
        [
            Rule("/v1/products/<int:product_id>", endpoint="product"),
            Rule("/files/<path:name>", endpoint="file", defaults={"kind": "raw"}),
            Rule("/pages/", endpoint="page", defaults={"number": 1}),
            Rule("/pages/<int:number>", endpoint="page"),
            Rule("/static", endpoint="static"),
        ]
    )


def _rule(url_map: Map, rule_text: str) -> Rule:
    return next(rule for rule in url_map.iter_rules() if rule.rule == rule_text)


def test_two_maps_share_the_builders_of_equal_rules_and_build_the_same_urls() -> None:
    first, second = _map(), _map()
    shared = _rule(first, "/v1/products/<int:product_id>")._build_unknown
    again = _rule(second, "/v1/products/<int:product_id>")._build_unknown
    assert shared.__func__ is again.__func__  # type: ignore[attr-defined]
    assert shared.__self__ is not again.__self__  # type: ignore[attr-defined]  # each bound to its own rule

    for url_map in (first, second):
        urls = url_map.bind("shop.example", url_scheme="https")
        assert urls.build("product", {"product_id": 7}) == "/v1/products/7"
        assert urls.build("product", {"product_id": 7, "q": "a b"}) == "/v1/products/7?q=a+b"
        assert urls.build("file", {"name": "a/b.csv"}) == "/files/a/b.csv"
        assert urls.build("page", {}) == "/pages/"
        assert urls.build("page", {"number": 3}) == "/pages/3"
        assert urls.build("static", {}, force_external=True) == "https://shop.example/static"


def test_a_rule_with_a_default_for_its_own_variable_gets_a_builder_of_its_own() -> None:
    def build(default: int) -> str | None:
        rule = Rule("/pages/<int:number>", endpoint="page", defaults={"number": default})
        urls = Map([rule]).bind("shop.example")
        return urls.build("page", {"number": default})

    assert (build(2), build(5)) == ("/pages/2", "/pages/5")
