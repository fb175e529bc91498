"""``omohub catalog import``: a shop's own products and stores, and the demo's pictures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hub.catalog import PRODUCTS as PRODUCT_KIND
from hub.catalog import RowError, clean
from hub.cli import CLI_ACTOR, main
from hub.demo import PRODUCTS, STORES
from hub.models import AuditEvent, Product, Store
from tests.conftest import RunningHub, stored_rows

BOM = "\ufeff"


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def _csv(*lines: str) -> str:
    """What Excel's "CSV UTF-8" writes: a BOM and CRLF line ends."""
    return BOM + "".join(line + "\r\n" for line in lines)


def _stored(url: str, model: type) -> list:  # type: ignore[type-arg]
    return asyncio.run(stored_rows(url, model))


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture
def omohub_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OMOHUB_DATABASE_URL", database_url)
    monkeypatch.setenv("OMOHUB_DATA_DIR", str(tmp_path / "data"))
    return database_url


def test_import_reads_excel_csv_and_updates_on_a_second_import(
        omohub_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    products = _write(tmp_path / "products.csv", _csv(
        "sku,name,name_en,price,currency,image_url,description",
        'OMO-MATCHA-010,抹茶 30g,Matcha 30 g,"1,980",jpy,/static/products/tea.svg,'
        '"石臼挽き。\n冷蔵庫で保存してください。"',  # Excel ends a line in a cell with LF
        "OMO-CUP-011,湯呑み,,2400,JPY,https://cdn.example/cup.png,"))
    assert main(["catalog", "import", str(products)]) == 0
    assert "products: 2 created, 0 updated, 0 unchanged, 0 refused" in capsys.readouterr().out
    matcha = {p.sku: p for p in _stored(omohub_env, Product)}["OMO-MATCHA-010"]
    assert (matcha.name, matcha.name_en, matcha.price, matcha.currency) == (
        "抹茶 30g", "Matcha 30 g", 1980, "JPY")
    assert matcha.description == "石臼挽き。\n冷蔵庫で保存してください。"

    prices = _write(tmp_path / "prices.csv", _csv(
        "SKU,Price", "OMO-MATCHA-010,2100", "OMO-CUP-011,2400"))
    assert main(["catalog", "import", str(prices)]) == 0
    assert "products: 0 created, 1 updated, 1 unchanged, 0 refused" in capsys.readouterr().out
    by_sku = {p.sku: p for p in _stored(omohub_env, Product)}
    assert (by_sku["OMO-MATCHA-010"].price, by_sku["OMO-MATCHA-010"].name) == (2100, "抹茶 30g")
    assert by_sku["OMO-CUP-011"].image_url == "https://cdn.example/cup.png"


def test_bad_rows_are_named_by_line_and_field_and_the_rest_imported(
        omohub_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "products.csv", _csv(
        "sku,name,price,currency",
        'OMO-OK-1,"二行の\n名前",100,JPY',
        "OMO BAD,空白,100,JPY",
        "OMO-NEG,負,-5,JPY",
        "OMO-DEC,小数,12.5,JPY",
        "OMO-CUR,通貨,100,YEN1",
        f"OMO-LONG,{'長' * 201},100,JPY",
        "OMO-EMPTY,,100,JPY",
        "OMO-TWICE,一,100,JPY",
        "OMO-TWICE,二,200,JPY",
        "OMO-SHORT,短い",
        "OMO-OK-2,よい,300,USD"))
    assert main(["catalog", "import", str(path)]) == 2
    captured = capsys.readouterr()
    assert _errors(captured.err) == [
        f"error: {path}:4: 'sku' must be 1 to 64 letters, digits, '-', '_' or '.' (it goes "
        "into QR codes and chat links), not 'OMO BAD'",
        f"error: {path}:5: 'price' must be a whole number, 0 or more, not '-5'",
        f"error: {path}:6: 'price' must be a whole number, 0 or more, not '12.5'",
        f"error: {path}:7: 'currency' must be a three-letter code such as JPY, not 'YEN1'",
        f"error: {path}:8: 'name' is longer than 200 characters (201)",
        f"error: {path}:9: 'name' must not be empty",
        f"error: {path}:10: duplicate sku 'OMO-TWICE', also at {path}:11: none of these rows "
        "is imported",
        f"error: {path}:11: duplicate sku 'OMO-TWICE', also at {path}:10: none of these rows "
        "is imported",
        f"error: {path}:12: has 2 cells, the header 4"]
    assert "products: 2 created, 0 updated, 0 unchanged, 9 refused" in captured.out
    stored = {p.sku: (p.name, p.price, p.currency) for p in _stored(omohub_env, Product)}
    assert stored == {"OMO-OK-1": ("二行の\n名前", 100, "JPY"),
                      "OMO-OK-2": ("よい", 300, "USD")}


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)",
    "data:image/svg+xml,<svg onload=alert(1)>", "vbscript:msgbox(1)",
    "http://shop.example/tea.png", "//evil.example/tea.png", "/\\evil.example/tea.png",
    "/\t/evil.example/tea.png", "https:///tea.png", "ftp://shop.example/tea.png",
    "tea.png", "/static/tea.png\nhttps://x"])
def test_an_image_url_that_is_not_https_or_a_site_path_is_refused(url: str) -> None:
    with pytest.raises(RowError, match="'image_url' must be an https:// address or a path "):
        clean(PRODUCT_KIND, {"sku": "OMO-1", "image_url": url})


@pytest.mark.parametrize("url", ["", "/static/products/tea.svg", "https://cdn.example/a.png?v=2"])
def test_https_and_site_paths_are_image_urls(url: str) -> None:
    assert clean(PRODUCT_KIND, {"sku": "OMO-1", "image_url": url})["image_url"] == url


def test_an_unsafe_image_url_is_refused_on_import(
        omohub_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "products.csv", _csv(
        "sku,name,image_url", "OMO-XSS,だめ,javascript:alert(1)", "OMO-OK,よい,/static/ok.png"))
    assert main(["catalog", "import", str(path)]) == 2
    assert _errors(capsys.readouterr().err) == [
        f"error: {path}:2: 'image_url' must be an https:// address or a path on this site "
        "starting with / (the chat page shows no other images), not 'javascript:alert(1)'"]
    assert [p.sku for p in _stored(omohub_env, Product)] == ["OMO-OK"]


def test_json_holds_products_and_stores(
        omohub_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "catalog.json", """{
      "products": [{"sku": "OMO-TEA-001", "name": "静岡煎茶", "price": 1280},
                   {"sku": "OMO-KETTLE-002", "name": "ケトル", "price": 59.8},
                   {"sku": "OMO-TOWEL-003", "price": 1650}],
      "stores": [{"id": "shibuya", "name": "omo 渋谷店", "address": "東京都渋谷区"},
                 {"id": "umeda", "name": "omo 梅田店", "phone": "06"}]
    }""")
    assert main(["catalog", "import", str(path)]) == 2
    captured = capsys.readouterr()
    assert _errors(captured.err) == [
        f"error: {path}:products[1]: 'price' must be text or a whole number, not 59.8",
        f"error: {path}:products[2]: 'name' is missing, and a new product needs it",
        f"error: {path}:stores[1]: unknown field 'phone' (the fields are id, name, address)"]
    assert captured.out.splitlines()[-2:] == [
        "products: 1 created, 0 updated, 0 unchanged, 2 refused",
        "stores: 1 created, 0 updated, 0 unchanged, 1 refused"]
    assert [(p.sku, p.price) for p in _stored(omohub_env, Product)] == [("OMO-TEA-001", 1280)]
    assert [(s.id, s.address) for s in _stored(omohub_env, Store)] == [("shibuya", "東京都渋谷区")]


def test_a_file_that_cannot_be_read_is_refused_whole_and_the_others_imported(
        omohub_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shift_jis = tmp_path / "sjis.csv"  # what Excel's plain "CSV" writes in Japanese Windows
    shift_jis.write_bytes("sku,name\r\nOMO-1,煎茶\r\n".encode("cp932"))
    typo = _write(tmp_path / "typo.csv", _csv("sku,name,imageurl", "OMO-2,茶,/a.png"))
    neither = _write(tmp_path / "neither.csv", _csv("code,name", "OMO-3,茶"))
    broken = _write(tmp_path / "broken.json", '{"products": [}')
    stores = _write(tmp_path / "stores.csv", _csv("id,name,address", "shibuya,omo 渋谷店,"))
    missing = tmp_path / "missing.csv"
    assert main(["catalog", "import", str(shift_jis), str(typo), str(neither), str(broken),
                 str(missing), str(stores)]) == 2
    captured = capsys.readouterr()
    assert _errors(captured.err) == [
        f'error: {shift_jis}: is not UTF-8 text (in Excel, save as "CSV UTF-8")',
        f"error: {typo}:1: unknown column 'imageurl' for products (the columns are sku, name, "
        "name_en, price, currency, image_url, description)",
        f"error: {neither}:1: the header names neither a 'sku' column (products) nor an 'id' "
        "column (stores)",
        f"error: {broken}:1: is not JSON: Expecting value",
        f"error: {missing}: cannot be read: No such file or directory"]
    assert captured.out.splitlines()[-2:] == [
        "stores: 1 created, 0 updated, 0 unchanged, 0 refused", "5 file(s) refused"]
    assert _stored(omohub_env, Product) == []
    assert [s.id for s in _stored(omohub_env, Store)] == ["shibuya"]


def test_each_imported_file_is_audited(omohub_env: str, tmp_path: Path) -> None:
    products = _write(tmp_path / "products.csv", _csv(
        "sku,name,price", "OMO-1,茶,100", "OMO-2,湯呑み,-1"))
    stores = _write(tmp_path / "stores.csv", _csv("id,name", "shibuya,渋谷店"))
    assert main(["catalog", "import", str(products), str(stores)]) == 2
    events = sorted(_stored(omohub_env, AuditEvent), key=lambda e: e.id)
    assert [(e.action, e.actor_type, e.actor_id, e.data) for e in events] == [
        ("catalog.import", CLI_ACTOR, None, {
            "file": str(products),
            "products": {"created": 1, "updated": 0, "unchanged": 0, "refused": 1}}),
        ("catalog.import", CLI_ACTOR, None, {
            "file": str(stores),
            "stores": {"created": 1, "updated": 0, "unchanged": 0, "refused": 0}})]


async def test_imported_products_are_in_the_api(
        hub: RunningHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMOHUB_DATABASE_URL", hub.services.settings.database_url)
    monkeypatch.setenv("OMOHUB_DATA_DIR", str(tmp_path / "cli-data"))
    path = _write(tmp_path / "products.csv", _csv(
        "sku,name,name_en,price,image_url", "OMO-MATCHA-010,抹茶,Matcha,1980,/m.svg"))
    assert await asyncio.to_thread(main, ["catalog", "import", str(path)]) == 0
    token = await hub.login()
    items = (await hub.api("GET", "/api/products", token)).json()["items"]
    assert items == [{"sku": "OMO-MATCHA-010", "name": "抹茶", "name_en": "Matcha",
                      "price": 1980, "currency": "JPY", "image_url": "/m.svg",
                      "description": ""}]
    page = await hub.http.get("/chat?product=OMO-MATCHA-010", headers={"Accept-Language": "en"})
    assert '<img src="/m.svg"' in page.text and "Matcha" in page.text


async def test_the_demo_chat_page_shows_the_products_picture(hub: RunningHub) -> None:
    async with hub.services.sessions() as session, session.begin():
        session.add_all([*(Product(**p.model_dump()) for p in PRODUCTS),
                         *(Store(**s.model_dump()) for s in STORES)])
    page = await hub.http.get("/chat?product=OMO-KETTLE-002&store=shibuya",
                              headers={"Accept-Language": "ja"})
    assert page.status_code == 200
    assert '<img src="/static/products/kettle.svg"' in page.text
    policy = {directive.split()[0]: directive.split()[1:]
              for directive in page.headers["content-security-policy"].split("; ")}
    # the widget shows /chat in an iframe on the shop's site: a site path is still the hub's
    assert "'self'" in policy["img-src"] and policy["frame-ancestors"] == ["*"]
    for product in PRODUCTS:
        assert product.image_url.startswith("/static/products/")
        picture = await hub.http.get(product.image_url)
        assert picture.status_code == 200, product.image_url
        assert picture.headers["content-type"].startswith("image/svg+xml")
        assert picture.headers["x-content-type-options"] == "nosniff"
        assert picture.text.startswith("<svg") and "<script" not in picture.text
        assert clean(PRODUCT_KIND, product.model_dump()) == product.model_dump()


@pytest.mark.parametrize(("price", "currency", "shown"), [
    (1280, "JPY", "¥1,280"), (12, "USD", "$12"), (1500, "eur", "€1,500"),
    (40, "CHF", "CHF 40")])
async def test_the_product_card_prices_in_the_products_currency(
        hub: RunningHub, price: int, currency: str, shown: str) -> None:
    async with hub.services.sessions() as session, session.begin():
        session.add(Product(sku="OMO-MUG-020", name="Mug", price=price, currency=currency))
    page = await hub.http.get("/chat?product=OMO-MUG-020", headers={"Accept-Language": "en"})
    assert f'<span class="product-price">{shown}</span>' in page.text
