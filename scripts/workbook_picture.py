"""The French guide's picture of the workbook (docs/fr/images/classeur.png), made again.

A French workbook (``xlstock new --lang fr``) goes through the daily loop against a
stock service started here on 127.0.0.1: Synchroniser, a delivery in *Reçu* and a count
in *Nouveau niveau*, a sale online, Aperçu; then LibreOffice headless draws sheet Stock
as it prints it (``soffice --convert-to pdf``) and ``pdftoppm`` (Debian's poppler-utils)
turns the page into a PNG.

    python scripts/workbook_picture.py                # writes docs/fr/images/classeur.png
    python scripts/workbook_picture.py --lang en --out stock.png
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import openpyxl

from xlstock import actions
from xlstock.model import StockItem
from xlstock.remote.client import HttpStockServiceClient
from xlstock.server import start_background_server
from xlstock.workbook import layout
from xlstock.workbook.template import build_workbook
from xlstock.workbook.xlsx_file import XlsxFile

ROOT = Path(__file__).resolve().parents[1]
SHOP = "https://ma-boutique.example"
CATALOGUE = {
    layout.FRENCH: [
        StockItem("sweat-rouge", "Sweat à capuche", "Rouge / L", 12),
        StockItem("sweat-bleu", "Sweat à capuche", "Bleu / M", 3),
        StockItem("casquette", "Casquette", "", 25),
        StockItem("ceinture", "Ceinture", "Cuir", 0),
        StockItem("bonnet", "Bonnet", "", 7),
        StockItem("lunettes", "Lunettes de soleil", "", 2),
        StockItem("00123", "Chaussettes", "Bleu", 40),
    ],
    layout.ENGLISH: [
        StockItem("hoodie-red", "Hoodie", "Red / L", 12),
        StockItem("hoodie-blue", "Hoodie", "Blue / M", 3),
        StockItem("cap", "Cap", "", 25),
        StockItem("belt", "Belt", "Leather", 0),
        StockItem("beanie", "Beanie", "", 7),
        StockItem("sunglasses", "Sunglasses", "", 2),
        StockItem("00123", "Socks", "Blue", 40),
    ],
}
EDITS = {  # the merchant's typing: SKU's position in the catalogue -> header -> value
    layout.FRENCH: {0: {layout.RECEIVED: "=2*6"}, 1: {layout.LOW_AT: 5},
                    3: {layout.RECEIVED: 10}, 4: {layout.NEW_LEVEL: 9}},
    layout.ENGLISH: {0: {layout.RECEIVED: "=2*6"}, 1: {layout.LOW_AT: 5},
                     3: {layout.RECEIVED: 10}, 4: {layout.NEW_LEVEL: 9}},
}
SALE = {4: 2, 2: 1}  # sold online between Synchroniser and Aperçu
RESOLUTION = 150  # pixels per inch


def soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if not found:
        sys.exit("LibreOffice is needed: apt-get install -y --no-install-recommends "
                 "libreoffice-calc-nogui")
    return found


def tool(name: str) -> str:
    """A program of Debian's poppler-utils (pdftoppm, pdftotext)."""
    found = shutil.which(name)
    if not found:
        sys.exit(f"{name} is needed: apt-get install -y poppler-utils")
    return found


def pdftoppm() -> str:
    return tool("pdftoppm")


def make_workbook(path: Path, language: str, folder: Path) -> None:
    """The loop up to Aperçu on a workbook in ``language``, against a service here; the
    merchant's typing is saved by LibreOffice, which stores the formulas' results."""
    items = CATALOGUE[language]
    with start_background_server(folder / "shop.db", port=0) as server:
        token = server.store.add_shop(SHOP, items)
        build_workbook(path, service_url=server.url, shop_url=SHOP, language=language)
        with HttpStockServiceClient(server.url, SHOP, token) as service:
            with XlsxFile.open(path) as book:
                actions.sync(book, service)
            type_edits(path, language)
            libreoffice(path, "xlsx", folder / "saved", folder)
            shutil.copyfile(folder / "saved" / path.name, path)
            service.place_order({items[i].sku: qty for i, qty in SALE.items()},
                                reference="web-1001")
            with XlsxFile.open(path) as book:
                actions.preview(book, service)


def type_edits(path: Path, language: str) -> None:
    """What a merchant types, with the result a spreadsheet program would save."""
    book = openpyxl.load_workbook(path)
    sheet = book[layout.STOCK_SHEET]
    columns = {cell.value: cell.column for cell in sheet[1] if cell.value}
    rows = {sheet.cell(row, 1).value: row for row in range(2, sheet.max_row + 1)}
    for index, cells in EDITS[language].items():
        row = rows[CATALOGUE[language][index].sku]
        for header, value in cells.items():
            sheet.cell(row, columns[layout.header_text(header, language)]).value = value
    book.save(path)


def libreoffice(path: Path, fmt: str, out: Path, folder: Path) -> Path:
    """LibreOffice headless opens ``path`` and saves it as ``fmt`` into ``out``."""
    profile = (folder / "lo-profile").as_uri()
    subprocess.run([soffice(), "--headless", "--norestore", f"-env:UserInstallation={profile}",
                    "--convert-to", fmt, "--outdir", str(out), str(path)],
                   check=True, capture_output=True, timeout=180)
    return out / f"{path.stem}.{fmt}"


def draw(workbook: Path, out: Path, folder: Path) -> None:
    """Sheet Stock's first printed page as a PNG: LibreOffice prints the workbook to PDF
    (Stock first), pdftoppm draws page 1, cut to the table (its words' box, from
    pdftotext, with a margin)."""
    pdf = libreoffice(workbook, "pdf", folder / "pdf", folder)
    left, top, right, bottom = table_box(pdf)
    scale = RESOLUTION / 72  # PDF points to pixels
    margin = 12
    x, y = max(0, int(left * scale) - margin), max(0, int(top * scale) - margin)
    width = int((right - left) * scale) + 2 * margin
    height = int((bottom - top) * scale) + 2 * margin
    subprocess.run([pdftoppm(), "-png", "-r", str(RESOLUTION), "-f", "1", "-l", "1",
                    "-singlefile", "-x", str(x), "-y", str(y), "-W", str(width), "-H",
                    str(height), str(pdf), str(out.with_suffix(""))], check=True, timeout=120)


def table_box(pdf: Path) -> tuple[float, float, float, float]:
    """Left, top, right, bottom (PDF points) of the table on the PDF's first page."""
    html = subprocess.run([tool("pdftotext"), "-bbox", "-f", "1", "-l", "1", str(pdf), "-"],
                          check=True, capture_output=True, text=True, timeout=60).stdout
    words = [tuple(float(n) for n in box) for box in re.findall(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)"', html)]
    page = re.search(r'<page width="([\d.]+)"', html)
    if not words or not page:
        sys.exit(f"{pdf} has no text on its first page")
    left = min(w[0] for w in words)
    # the last column's header is centred: the table ends at the right margin, which
    # LibreOffice makes as wide as the left one
    return (left, min(w[1] for w in words), float(page.group(1)) - left,
            max(w[3] for w in words))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=layout.LANGUAGES, default=layout.FRENCH)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "fr" / "images" /
                        "classeur.png")
    args = parser.parse_args()
    tool("pdftoppm"), tool("pdftotext")
    with tempfile.TemporaryDirectory(prefix="xlstock-picture-") as tmp:
        folder = Path(tmp)
        workbook = folder / "stock.xlsx"
        make_workbook(workbook, args.lang, folder)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        draw(workbook, args.out, folder)
    print(args.out)


if __name__ == "__main__":
    main()
