"""Catalogue CSVs for ``xlstock shop add --catalogue``: the contract's shape and a real
WooCommerce product export."""

from __future__ import annotations

from pathlib import Path

import pytest

from xlstock.errors import UsageError
from xlstock.model import CatalogueItem as StockItem
from xlstock.server.catalogue import read_catalogue, read_catalogue_csv

WOOCOMMERCE = Path(__file__).parent / "fixtures" / "woocommerce_sample_catalogue.csv"


def write(tmp_path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / "catalogue.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_contract_catalogue_is_read_with_any_header_case_order_and_extra_columns(tmp_path):
    path = write(tmp_path, "\ufeffQty, SKU ,Colour note,Name,VARIANT\r\n"
                           "5,A-1,ignored,Hoodie,Red / XL\r\n"
                           "0,00123,,Socks,\r\n"
                           "\r\n"
                           '12,B-2,,"Cap, wool",\r\n')
    assert read_catalogue_csv(path) == [
        StockItem("A-1", "Hoodie", "Red / XL", 5),
        StockItem("00123", "Socks", "", 0),
        StockItem("B-2", "Cap, wool", "", 12),
    ]


def test_variant_column_may_be_left_out(tmp_path):
    path = write(tmp_path, "sku,name,qty\nA,Hat,3\n")
    assert read_catalogue_csv(path) == [StockItem("A", "Hat", "", 3)]


def test_semicolon_separated_catalogue_as_european_excel_saves_it(tmp_path):
    path = write(tmp_path, "sku;name;variant;qty\nA;Hat, red;;3\n")
    assert read_catalogue_csv(path) == [StockItem("A", "Hat, red", "", 3)]


def test_missing_column_is_named_with_the_fix(tmp_path):
    path = write(tmp_path, "sku,title,qty\nA,Hat,3\n")
    with pytest.raises(UsageError, match=r"line 1.*lacks the column\(s\) name"):
        read_catalogue_csv(path)


def test_every_bad_line_is_named_with_its_fix(tmp_path):
    path = write(tmp_path, "sku,name,variant,qty\n"
                           "A,Hat,,3\n"
                           "A,Hat again,,4\n"
                           "B,Cap,,lots\n"
                           "C,Belt,,-2\n"
                           ",Nameless,,1\n"
                           'D,"Two\nlines",,1\n'
                           "E,Scarf,,\n"
                           "F,Glove,,2.5\n")
    with pytest.raises(UsageError) as caught:
        read_catalogue_csv(path)
    message = str(caught.value)
    assert "7 problem(s)" in message
    assert "line 3 (SKU 'A'): SKU listed again (first on line 2)" in message
    assert "line 4 (SKU 'B'): qty 'lots' is not a whole number" in message
    assert "line 5 (SKU 'C'): qty -2 is below 0" in message
    assert "line 6: the sku is empty" in message
    assert "line 7 (SKU 'D'): name holds a control character" in message
    assert "line 9 (SKU 'E'): qty is empty; type the level (0 for none)" in message
    assert "line 10 (SKU 'F')" in message


def test_sku_with_a_control_character_is_refused(tmp_path):
    path = write(tmp_path, "sku,name,qty\n\"A\tB\",Hat,1\n")
    with pytest.raises(UsageError, match="line 2: SKU holds a control character"):
        read_catalogue_csv(path)


def test_file_that_is_not_utf8_says_how_to_save_it(tmp_path):
    path = write(tmp_path, "sku,name,qty\nA,Caf\u00e9,1\n", encoding="cp1252")
    with pytest.raises(UsageError, match="CSV UTF-8"):
        read_catalogue_csv(path)


@pytest.mark.parametrize("line", ['"A,Hat,,3', 'A,"Hat"s,,3'])
def test_a_broken_quote_is_named_not_read_as_one_long_sku(tmp_path, line):
    path = write(tmp_path, f"sku,name,variant,qty\n{line}\nB,Cap,,1\n")
    with pytest.raises(UsageError, match=r"catalogue.csv line [23]: .*; check the quotes"):
        read_catalogue_csv(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UsageError, match="nowhere.csv"):
        read_catalogue_csv(tmp_path / "nowhere.csv")


def test_empty_file_asks_for_a_header(tmp_path):
    with pytest.raises(UsageError, match="no header row"):
        read_catalogue_csv(write(tmp_path, ""))


def test_woocommerce_export_keeps_only_products_that_hold_stock():
    catalogue = read_catalogue(WOOCOMMERCE)
    assert catalogue.kind == "woocommerce"
    by_sku = {item.sku: item for item in catalogue.items}
    assert len(by_sku) == 19
    assert by_sku["woo-hoodie-blue-logo"] == StockItem("woo-hoodie-blue-logo", "Hoodie",
                                                       "Blue / Yes", None)
    assert by_sku["woo-vneck-tee-red"] == StockItem("woo-vneck-tee-red",
                                                    "Awesome V-Neck T-Shirt", "Red", None)
    assert by_sku["woo-belt"] == StockItem("woo-belt", "Belt", "", None)
    assert catalogue.no_quantities == "the file has no Stock column"
    assert catalogue.without_quantity == 19
    assert by_sku["woo-hoodie-with-logo"].variant == ""
    assert "Woo-tshirt-logo" in by_sku and "woo-tshirt" in by_sku
    for holds_no_stock in ("woo-vneck-tee", "woo-hoodie", "woo-album", "woo-single",
                           "logo-collection", "wp-pennant"):
        assert holds_no_stock not in by_sku
        assert any(f"'{holds_no_stock}'" in reason for reason in catalogue.skipped)
    assert len(catalogue.skipped) == 6


def test_woocommerce_stock_column_gives_the_levels(tmp_path):
    path = write(tmp_path, "ID,Type,SKU,Name,Stock,Parent,Attribute 1 name,"
                           "Attribute 1 value(s)\n"
                           "10,variable,tee,Tee,,,Size,\"S, M\"\n"
                           "11,variation,tee-s,Tee - S,4,id:10,Size,S\n"
                           "12,variation,tee-m,Tee - M,,tee,Size,M\n"
                           "13,simple,,No SKU,3,,,\n"
                           "14,\"simple, virtual\",gift,Gift card,,,,\n"
                           "15,simple,mug,Mug,7,,,\n")
    catalogue = read_catalogue(path)
    assert catalogue.items == [
        StockItem("tee-s", "Tee", "S", 4),
        StockItem("tee-m", "Tee", "M", None),  # blank: stock not managed
        StockItem("mug", "Mug", "", 7),
    ]
    assert catalogue.no_quantities == ""
    assert any("No SKU" in reason and "no SKU" in reason for reason in catalogue.skipped)


def test_woocommerce_stock_not_managed_or_kept_by_the_parent_gives_no_quantity(tmp_path):
    path = write(tmp_path, "Type,SKU,Name,Parent,Manage stock?,Stock\n"
                           "simple,a,A,,1,5\n"
                           "simple,b,B,,0,5\n"
                           "variation,c,C,a,1,parent\n")
    assert [item.qty for item in read_catalogue(path).items] == [5, None, None]


def test_woocommerce_bad_stock_is_named(tmp_path):
    path = write(tmp_path, "Type,SKU,Name,Stock,Parent\nsimple,mug,Mug,many,\n")
    with pytest.raises(UsageError, match=r"line 2 \(SKU 'mug'\): Stock 'many'"):
        read_catalogue_csv(path)
