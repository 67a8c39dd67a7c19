"""A small sheet part's rows in the forms the readers meet (inline and shared strings, a
style, a formula with its result, a date style, gaps in rows and columns, an empty and a
blank cell), shared by the tests of reading some columns and of the streamed read."""

from __future__ import annotations

import datetime as dt

from xlstock.workbook.sheetxml import Context

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
CONTEXT = Context(lambda: ["shared", ""], frozenset({"9"}),
                  lambda serial: dt.datetime(1899, 12, 30) + dt.timedelta(days=serial))
ROWS = (
    '<row r="1"><c r="A1" t="inlineStr"><is><t>SKU</t></is></c><c r="B1" t="inlineStr"><is>'
    '<t>Product</t></is></c><c r="C1" t="inlineStr"><is><t>Online</t></is></c></row>'
    '<row r="2"><c r="A2" s="1" t="inlineStr"><is><t>A-1</t></is></c><c r="B2" t="s"><v>0</v>'
    '</c><c r="C2"><v>-4</v></c><c r="D2"><f>C2*2</f><v>-8</v></c></row>'
    '<row r="3"><c r="A3" t="inlineStr"><is><t>B&amp;2</t></is></c><c r="B3" s="9"><v>45000.5'
    '</v></c><c r="C3"><v>7</v></c></row>'
    '<row r="5"><c r="B5" t="inlineStr"><is><t>only a name</t></is></c><c r="C5" s="2"/></row>'
    '<row r="6"><c r="B6" t="s"><v>1</v></c><c r="C6"><v> </v></c></row>'
)
