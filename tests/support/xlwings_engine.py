"""A stand-in for Excel under xlwings, for tests on machines without Excel.

xlwings talks to Excel through an *engine*: ``xw.App``, ``xw.Book``, ``xw.Sheet`` and
``xw.Range`` wrap engine objects (``impl``) and run their own conversion pipeline
(options, ``ndim``, ``err_to_str``, chunking, resizing) on top. This module is such an
engine, written in the shape of xlwings' own non-COM engines (``xlwings/pro/_xlcalamine.py``)
and its base classes, so the objects the code under test sees are the real xlwings
classes: ``xw.Book(impl=...)``, ``Book.set_mock_caller()``, ``Book.caller()``,
``App.properties()``, ``App.alert()``, ``Range.options(...).value``.

What it imitates is what the xlwings adapter and ``xlstock.excel`` rely on, as Excel on
Windows does it over COM:

- cells hold doubles, text, booleans, dates, errors or formulas (with the value Excel
  calculated); errors come out of ``raw_value`` as COM error codes, which xlwings'
  ``err_to_str`` turns into ``"#N/A"``... (only the seven classic ones, like pywin32);
- a string written as a value is *typed in*, the way Excel treats it: ``=...`` becomes a
  formula, ``00123`` the number 123, ``TRUE`` a boolean, ``#N/A`` an error, ``2024-01-05``
  a date, unless it starts with an apostrophe (kept as the prefix, not the text);
- ``Range.formula`` gives each cell's formula, or its constant as text, without the
  apostrophe prefix; the used range covers cells with a value or a format;
- sheets can be very hidden (``visible = 2``, COM's ``xlSheetVeryHidden``);
- ``App`` keeps the settings that ``App.properties`` changes, records every setting and
  every ``alert`` (answering questions from a script of answers);
- ``Book.save`` writes the workbook to disk with openpyxl (this engine *is* the office
  application here), ``open_book`` loads one (formulas with their cached values).

Every call that moves cell data (reads and writes of values or formulas, number formats,
clearing) is counted in ``book_impl(book).ops`` and logged in ``.op_log``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import xlwings as xw
from openpyxl.cell.cell import TYPE_ERROR, TYPE_FORMULA, TYPE_STRING
from openpyxl.worksheet.formula import ArrayFormula
from xlwings import base_classes, utils

MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384
SHEET_VERY_HIDDEN = 2
"""COM's ``xlSheetVeryHidden``: the value ``Sheet.Visible`` takes for a very hidden sheet."""

ERROR_NUMBERS = {
    "#NULL!": 2000, "#DIV/0!": 2007, "#VALUE!": 2015, "#REF!": 2023, "#NAME?": 2029,
    "#NUM!": 2036, "#N/A": 2042, "#GETTING_DATA": 2043, "#SPILL!": 2045, "#CONNECT!": 2046,
    "#BLOCKED!": 2047, "#UNKNOWN!": 2048, "#FIELD!": 2049, "#CALC!": 2050, "#BUSY!": 2051,
}
"""Excel's ``CVErr`` numbers; over COM an error cell reads as ``number - 2**31 - 0x0A0000``
(``0x800A0000 + number`` as a signed 32-bit integer)."""
_COM_ERROR_BASE = -2146828288
_CLASSIC_ERRORS = {"#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!"}
"""The errors pywin32-based xlwings names with ``err_to_str``; newer ones stay integers."""

_NUMBER = re.compile(r"^\s*[+-]?(\d{1,3}(,\d{3})+|\d+)?(\.\d*)?([eE][+-]?\d+)?\s*%?\s*$")
_ISO_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")
_US_DATE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?\s*$")


class UnscriptedQuestion(AssertionError):
    """The code under test asked the merchant a question the test did not answer."""


@dataclass(frozen=True)
class Error:
    """An error value in a cell."""

    code: str


@dataclass
class Cell:
    value: Any = None
    formula: str | None = None
    prefix: bool = False


@dataclass(frozen=True)
class Alert:
    """One message box shown through ``App.alert``."""

    prompt: str
    title: str | None
    buttons: str
    mode: str | None
    answer: str


def _typed(text: str) -> Cell:
    """What Excel stores when ``text`` is typed (or assigned as a value over COM)."""
    if text == "":
        return Cell()
    if text.startswith("'"):
        return Cell(value=text[1:], prefix=True)
    if text.startswith("=") and len(text) > 1:
        return Cell(formula=text)
    if text.upper() in ("TRUE", "FALSE"):
        return Cell(value=text.upper() == "TRUE")
    if text.upper() in ERROR_NUMBERS:
        return Cell(value=Error(text.upper()))
    if _NUMBER.match(text) and any(ch.isdigit() for ch in text):
        number = text.strip().replace(",", "")
        if number.endswith("%"):
            return Cell(value=float(number[:-1]) / 100)
        return Cell(value=float(number))
    if text.startswith(("+", "-", "@")) and len(text) > 1:
        return Cell(formula="=" + text)
    match = _ISO_DATE.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
        return Cell(value=dt.datetime(year, month, day))
    match = _US_DATE.match(text)
    if match:
        month, day = int(match.group(1)), int(match.group(2))
        year = int(match.group(3)) if match.group(3) else dt.date.today().year
        if year < 100:
            year += 2000 if year < 30 else 1900
        if 1 <= month <= 12 and 1 <= day <= 31:
            return Cell(value=dt.datetime(year, month, day))
    return Cell(value=text)


def _stored(value: Any) -> Cell:
    """A value written over COM (after xlwings' own preparation) as Excel keeps it."""
    if value is None:
        return Cell()
    if isinstance(value, str):
        return _typed(value)
    if isinstance(value, bool):
        return Cell(value=value)
    if isinstance(value, (int, float)):
        return Cell(value=float(value))
    if isinstance(value, dt.datetime):
        return Cell(value=value.replace(tzinfo=None))
    if isinstance(value, dt.date):
        return Cell(value=dt.datetime(value.year, value.month, value.day))
    if isinstance(value, dt.time):
        return Cell(value=dt.datetime(1899, 12, 30, value.hour, value.minute, value.second))
    raise TypeError(f"Excel cannot hold a {type(value).__name__} ({value!r})")


def _raw(cell: Cell | None) -> Any:
    if cell is None or cell.value is None:
        return None
    if isinstance(cell.value, Error):
        return _COM_ERROR_BASE + ERROR_NUMBERS[cell.value.code]
    return cell.value


def _formula_text(cell: Cell | None) -> str:
    """What COM's ``Range.Formula`` says about one cell."""
    if cell is None:
        return ""
    if cell.formula is not None:
        return cell.formula
    value = cell.value
    if value is None:
        return ""
    if isinstance(value, Error):
        return value.code
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime):
        text = f"{value.month}/{value.day}/{value.year}"
        if value.time() != dt.time():
            text += f" {value:%H:%M:%S}"
        return text
    return str(value)


def _shaped(grid: list[list[Any]]) -> Any:
    """COM hands a single cell back as a scalar, anything larger as a tuple of tuples."""
    if len(grid) == 1 and len(grid[0]) == 1:
        return grid[0][0]
    return tuple(tuple(row) for row in grid)


def _clean_element(value: Any, datetime_builder: Any, empty_as: Any, number_builder: Any,
                   err_to_str: bool) -> Any:
    """As ``xlwings._xlwindows._clean_value_data_element`` (pywin32 is not here)."""
    if value in ("", None):
        return empty_as
    if isinstance(value, dt.datetime):
        if datetime_builder is not dt.datetime:
            return datetime_builder(year=value.year, month=value.month, day=value.day,
                                    hour=value.hour, minute=value.minute,
                                    second=value.second, microsecond=value.microsecond)
        return value
    if number_builder is not None and isinstance(value, float):
        return number_builder(value)
    if isinstance(value, int) and not isinstance(value, bool):
        code = value - _COM_ERROR_BASE
        name = next((n for n, c in ERROR_NUMBERS.items() if c == code), None)
        if name in _CLASSIC_ERRORS:
            return name if err_to_str else None
    return value


class Engine:
    """The engine object xlwings' conversion pipeline asks for cleaning and typing."""

    def __init__(self) -> None:
        self.apps = Apps()

    name = "xlstock-test"
    type = "desktop"

    @staticmethod
    def clean_value_data(data: Any, datetime_builder: Any, empty_as: Any, number_builder: Any,
                         err_to_str: bool) -> list[list[Any]]:
        return [
            [_clean_element(c, datetime_builder, empty_as, number_builder, err_to_str)
             for c in row]
            for row in data
        ]

    @staticmethod
    def prepare_xl_data_element(x: Any, options: Any) -> Any:
        return "" if x is None else x


class Apps(base_classes.Apps):
    def __init__(self) -> None:
        self._apps: list[App] = []

    def add(self, spec: Any = None, add_book: Any = None, xl: Any = None,
            visible: Any = None) -> App:
        app = App(self)
        self._apps.insert(0, app)
        return app

    def keys(self) -> list[int]:
        return [a.pid for a in self._apps]

    def __iter__(self) -> Any:
        return iter(self._apps)

    def __len__(self) -> int:
        return len(self._apps)

    def __getitem__(self, index: int) -> App:
        return self._apps[index]


_pids = itertools.count(-1, -1)


class App(base_classes.App):
    """One fake Excel instance: its settings, its books, its message boxes."""

    def __init__(self, apps: Apps) -> None:
        self.apps = apps
        self._pid = next(_pids)
        self._books = Books(self)
        self.settings: dict[str, Any] = {
            "screen_updating": True, "calculation": "automatic", "status_bar": False,
            "display_alerts": True, "enable_events": True, "interactive": True,
            "visible": True,
        }
        self.history: list[tuple[str, Any]] = []
        self.alerts: list[Alert] = []
        self.answers: deque[str] = deque()

    def _set(self, name: str, value: Any) -> None:
        self.history.append((name, value))
        self.settings[name] = value

    @property
    def engine(self) -> Engine:
        return engine

    @property
    def api(self) -> App:
        return self

    @property
    def books(self) -> Books:
        return self._books

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def version(self) -> str:
        return "16.0"

    @property
    def hwnd(self) -> int:
        return -self._pid

    def activate(self, steal_focus: bool = False) -> None:
        pass

    def quit(self) -> None:
        self.apps._apps.remove(self)

    kill = quit

    def calculate(self) -> None:
        pass

    def alert(self, prompt: str, title: str | None, buttons: str | None, mode: str | None,
              callback: Any) -> str:
        """Record the message box; a question takes the next scripted answer."""
        buttons = buttons or "ok"
        if buttons == "ok":
            answer = "ok"
        elif self.answers:
            answer = self.answers.popleft()
        else:
            self.alerts.append(Alert(prompt, title, buttons, mode, "<unscripted>"))
            raise UnscriptedQuestion(f"unscripted {buttons} question: {prompt!r}")
        self.alerts.append(Alert(prompt, title, buttons, mode, answer))
        return answer


def _setting(name: str) -> property:
    def get(self: App) -> Any:
        return self.settings[name]

    def put(self: App, value: Any) -> None:
        self._set(name, value)

    return property(get, put)


for _name in ("screen_updating", "calculation", "status_bar", "display_alerts",
              "enable_events", "interactive", "visible"):
    setattr(App, _name, _setting(_name))


class Books(base_classes.Books):
    def __init__(self, app: App) -> None:
        self.app = app
        self.books: list[Book] = []
        self._active: Book | None = None

    @property
    def api(self) -> Books:
        return self

    @property
    def active(self) -> Book | None:
        return self._active

    def add(self, name: str | None = None) -> Book:
        book = Book(self, name or f"Book{len(self.books) + 1}")
        self.books.append(book)
        self._active = book
        return book

    def open(self, fullname: str, *args: Any, **kwargs: Any) -> Book:
        book = Book(self, str(Path(fullname).resolve()))
        book.load()
        self.books.append(book)
        self._active = book
        return book

    def __call__(self, name_or_index: int | str) -> Book:
        if isinstance(name_or_index, int):
            return self.books[name_or_index - 1]
        for book in self.books:
            if name_or_index.lower() in (book.name.lower(), book.fullname.lower()):
                return book
        raise KeyError(name_or_index)

    def __len__(self) -> int:
        return len(self.books)

    def __iter__(self) -> Any:
        return iter(self.books)


class Book(base_classes.Book):
    """A workbook held in memory; ``ops`` counts the cell operations done on it."""

    def __init__(self, books: Books, fullname: str) -> None:
        self.books = books
        self._fullname = fullname
        self.sheet_list: list[Sheet] = [Sheet(self, "Sheet1")]
        self.active_sheet: Sheet = self.sheet_list[0]
        self.ops: Counter[str] = Counter()
        self.op_log: list[tuple[str, str, int]] = []
        self.saves: list[str] = []
        self._file: Any = None
        self._saved: dict[int, dict[tuple[int, int], Cell]] = {}

    def count(self, kind: str, rng: Range) -> None:
        self.ops[kind] += 1
        rows, columns = rng.shape
        self.op_log.append((kind, f"{rng.sheet.name}!{rng.address}", rows * columns))

    @property
    def api(self) -> Book:
        return self

    @property
    def name(self) -> str:
        return Path(self._fullname).name

    @property
    def fullname(self) -> str:
        return self._fullname

    @property
    def sheets(self) -> Sheets:
        return Sheets(self)

    @property
    def app(self) -> App:
        return self.books.app

    def activate(self) -> None:
        self.books._active = self

    def close(self) -> None:
        self.books.books.remove(self)

    def load(self) -> None:
        """Read the workbook file the way Excel opens it: values, formulas and the
        values calculated when the file was last saved."""
        path = Path(self._fullname)
        keep_vba = path.suffix.lower() == ".xlsm"
        formulas = openpyxl.load_workbook(path, keep_vba=keep_vba)
        values = openpyxl.load_workbook(path, data_only=True)
        self.sheet_list = []
        for ws in formulas.worksheets:
            sheet = Sheet(self, ws.title)
            state = ws.sheet_state
            sheet._visible = {"visible": True, "hidden": False}.get(state, SHEET_VERY_HIDDEN)
            cached = values[ws.title]
            for row in ws.iter_rows():
                for c in row:
                    key = (c.row, c.column)
                    if c.has_style and c.style_id:
                        sheet.formats[key] = c.number_format
                    if c.value is None:
                        continue
                    sheet.data[key] = _loaded(c, cached.cell(c.row, c.column).value)
            self.sheet_list.append(sheet)
            self._saved[id(sheet)] = dict(sheet.data)
        self._file = formulas
        self.active_sheet = self.sheet_list[formulas.worksheets.index(formulas.active)]

    def save(self, path: str | None = None, password: str | None = None) -> None:
        """Write the workbook to disk through openpyxl, over the file as opened (so
        formatting openpyxl keeps is kept); only cells changed since the last save are
        rewritten."""
        target = Path(path or self._fullname)
        if self._file is None:
            self._file = openpyxl.Workbook()
            self._file.remove(self._file.active)
        wb = self._file
        names = [s.name for s in self.sheet_list]
        for ws in list(wb.worksheets):
            if ws.title not in names:
                wb.remove(ws)
        for index, sheet in enumerate(self.sheet_list):
            ws = wb[sheet.name] if sheet.name in wb.sheetnames else wb.create_sheet(sheet.name)
            wb.move_sheet(ws, index - wb.worksheets.index(ws))
            saved = self._saved.get(id(sheet), {})
            for key in saved.keys() - sheet.data.keys():
                ws.cell(*key).value = None
            for key, cell in sheet.data.items():
                if saved.get(key) is not cell:
                    _save_cell(ws.cell(*key), cell)
            self._saved[id(sheet)] = dict(sheet.data)
            ws.sheet_state = {True: "visible", False: "hidden"}.get(sheet._visible, "veryHidden")
        wb.active = names.index(self.active_sheet.name)
        wb.save(target)
        self._fullname = str(target.resolve())
        self.saves.append(self._fullname)


def _loaded(c: Any, cached: Any) -> Cell:
    if c.data_type == TYPE_FORMULA:
        text = c.value.text if isinstance(c.value, ArrayFormula) else str(c.value)
        if isinstance(cached, str) and cached.upper() in ERROR_NUMBERS:
            cached = Error(cached.upper())
        elif isinstance(cached, (int, float)) and not isinstance(cached, bool):
            cached = float(cached)
        return Cell(value=cached, formula=text if text.startswith("=") else "=" + text)
    if c.data_type == TYPE_ERROR:
        return Cell(value=Error(str(c.value)))
    if isinstance(c.value, str):
        return Cell(value=c.value, prefix=bool(c.quotePrefix))
    return _stored(c.value)


def _save_cell(target: Any, cell: Cell) -> None:
    if cell.formula is not None:
        target.value = cell.formula
        return
    value = cell.value
    if isinstance(value, Error):
        target.value = value.code
        target.data_type = TYPE_ERROR
    elif isinstance(value, str):
        target.value = value
        target.data_type = TYPE_STRING
    elif isinstance(value, float) and value.is_integer():
        target.value = int(value)
    else:
        target.value = value


class Sheets(base_classes.Sheets):
    def __init__(self, book: Book) -> None:
        self.book = book

    @property
    def api(self) -> Sheets:
        return self

    @property
    def active(self) -> Sheet:
        return self.book.active_sheet

    def __call__(self, name_or_index: int | str) -> Sheet:
        if isinstance(name_or_index, int):
            return self.book.sheet_list[name_or_index - 1]
        for sheet in self.book.sheet_list:
            if sheet.name.lower() == name_or_index.lower():
                return sheet
        raise KeyError(f"no sheet named {name_or_index!r}")

    def __len__(self) -> int:
        return len(self.book.sheet_list)

    def __iter__(self) -> Any:
        return iter(list(self.book.sheet_list))

    def add(self, before: Sheet | None = None, after: Sheet | None = None,
            name: str | None = None) -> Sheet:
        sheets = self.book.sheet_list
        if name is None:
            taken = {s.name.lower() for s in sheets}
            name = next(f"Sheet{n}" for n in itertools.count(1) if f"sheet{n}" not in taken)
        sheet = Sheet(self.book, name)
        if before is not None:
            sheets.insert(sheets.index(before), sheet)
        elif after is not None:
            sheets.insert(sheets.index(after) + 1, sheet)
        else:
            sheets.insert(sheets.index(self.book.active_sheet), sheet)
        self.book.active_sheet = sheet
        return sheet


class Sheet(base_classes.Sheet):
    def __init__(self, book: Book, name: str) -> None:
        self._book = book
        self._name = name
        self._visible: bool | int = True
        self.data: dict[tuple[int, int], Cell] = {}
        self.formats: dict[tuple[int, int], str] = {}

    def put(self, address: str, value: Any = None, *, formula: str | None = None) -> None:
        """Place a cell as Excel would have it after calculating (for test set-up)."""
        (row, column), _ = utils.a1_to_tuples(address)
        if formula is not None:
            cached = value if isinstance(value, Error) else _stored(value).value
            self.data[(row, column)] = Cell(value=cached, formula=formula)
        elif isinstance(value, Error):
            self.data[(row, column)] = Cell(value=value)
        elif isinstance(value, str):
            self.data[(row, column)] = Cell(value=value, prefix=True)
        else:
            self.data[(row, column)] = _stored(value)

    def fill(self, rows: list[list[Any]], top: int = 1, left: int = 1) -> None:
        """Place a block of values (text as text), uncounted (for test set-up)."""
        for r, row in enumerate(rows, start=top):
            for c, value in enumerate(row, start=left):
                if value is not None:
                    self.put(f"{utils.col_name(c)}{r}", value)

    def get(self, address: str) -> Cell | None:
        (row, column), _ = utils.a1_to_tuples(address)
        return self.data.get((row, column))

    @property
    def api(self) -> Sheet:
        return self

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    @property
    def index(self) -> int:
        return self._book.sheet_list.index(self) + 1

    @property
    def book(self) -> Book:
        return self._book

    @property
    def visible(self) -> bool:
        return self._visible is True

    @visible.setter
    def visible(self, value: bool | int) -> None:
        if value is not True and all(
            s._visible is not True for s in self._book.sheet_list if s is not self
        ):
            raise ValueError("Unable to set the Visible property: a workbook keeps one "
                             "visible sheet")
        self._visible = value

    @property
    def very_hidden(self) -> bool:
        return self._visible is not True and self._visible == SHEET_VERY_HIDDEN

    def activate(self) -> None:
        if self._visible is not True:
            raise ValueError(f"cannot activate hidden sheet {self._name!r}")
        self._book.active_sheet = self

    def range(self, arg1: Any, arg2: Any = None) -> Range:
        if isinstance(arg1, Range):
            first = (arg1.row, arg1.column)
            last = (arg1.row + arg1.shape[0] - 1, arg1.column + arg1.shape[1] - 1)
            if isinstance(arg2, Range):
                last2 = (arg2.row + arg2.shape[0] - 1, arg2.column + arg2.shape[1] - 1)
                return Range(self, min(first[0], arg2.row), min(first[1], arg2.column),
                             max(last[0], last2[0]), max(last[1], last2[1]))
            return Range(self, *first, *last)
        if isinstance(arg1, str):
            first, last = utils.a1_to_tuples(arg1)
            last = last or first
            return Range(self, first[0], first[1], last[0], last[1])
        if arg2 is None:
            arg2 = arg1
        return Range(self, arg1[0], arg1[1], arg2[0], arg2[1])

    @property
    def cells(self) -> Range:
        return Range(self, 1, 1, MAX_ROWS, MAX_COLUMNS)

    @property
    def used_range(self) -> Range:
        keys = set(self.data) | set(self.formats)
        if not keys:
            return Range(self, 1, 1, 1, 1)
        rows = [k[0] for k in keys]
        columns = [k[1] for k in keys]
        return Range(self, min(rows), min(columns), max(rows), max(columns))


class Range(base_classes.Range):
    def __init__(self, sheet: Sheet, row1: int, column1: int, row2: int, column2: int) -> None:
        if not (1 <= row1 <= row2 <= MAX_ROWS and 1 <= column1 <= column2 <= MAX_COLUMNS):
            raise ValueError(f"no such range: rows {row1}-{row2}, columns {column1}-{column2}")
        self.sheet = sheet
        self.bounds = (row1, column1, row2, column2)
        self.options: dict[str, Any] = {}

    @property
    def api(self) -> Range:
        return self

    @property
    def coords(self) -> tuple[str, int, int, int, int]:
        return (self.sheet.name, self.row, self.column, *self.shape)

    @property
    def row(self) -> int:
        return self.bounds[0]

    @property
    def column(self) -> int:
        return self.bounds[1]

    @property
    def shape(self) -> tuple[int, int]:
        r1, c1, r2, c2 = self.bounds
        return r2 - r1 + 1, c2 - c1 + 1

    def __len__(self) -> int:
        rows, columns = self.shape
        return rows * columns

    @property
    def address(self) -> str:
        r1, c1, r2, c2 = self.bounds
        first = f"${utils.col_name(c1)}${r1}"
        return first if (r1, c1) == (r2, c2) else f"{first}:${utils.col_name(c2)}${r2}"

    def get_address(self, row_absolute: bool, column_absolute: bool, external: bool) -> str:
        return self.address

    def __call__(self, row: int, column: int | None = None) -> Range:
        if column is None:
            rows, columns = self.shape
            row, column = divmod(row - 1, columns)
            row, column = row + 1, column + 1
        r, c = self.row + row - 1, self.column + column - 1
        return Range(self.sheet, r, c, r, c)

    def _keys(self) -> list[list[tuple[int, int]]]:
        r1, c1, r2, c2 = self.bounds
        return [[(r, c) for c in range(c1, c2 + 1)] for r in range(r1, r2 + 1)]

    def _store(self, data: Any) -> None:
        keys = self._keys()
        if not isinstance(data, (list, tuple)):
            grid = [[data] * len(keys[0]) for _ in keys]
        else:
            grid = [list(row) if isinstance(row, (list, tuple)) else [row] for row in data]
            if len(grid) != len(keys) or any(len(g) != len(keys[0]) for g in grid):
                raise ValueError(f"{self.address}: data does not match the range's shape")
        cells = self.sheet.data
        for key_row, value_row in zip(keys, grid, strict=True):
            for key, value in zip(key_row, value_row, strict=True):
                cell = _stored(value)
                if cell.value is None and cell.formula is None:
                    cells.pop(key, None)
                else:
                    cells[key] = cell

    @property
    def raw_value(self) -> Any:
        self.sheet.book.count("read values", self)
        cells = self.sheet.data
        return _shaped([[_raw(cells.get(k)) for k in row] for row in self._keys()])

    @raw_value.setter
    def raw_value(self, data: Any) -> None:
        self.sheet.book.count("write values", self)
        self._store(data)

    @property
    def formula(self) -> Any:
        self.sheet.book.count("read formulas", self)
        cells = self.sheet.data
        return _shaped([[_formula_text(cells.get(k)) for k in row] for row in self._keys()])

    @formula.setter
    def formula(self, data: Any) -> None:
        self.sheet.book.count("write formulas", self)
        self._store(data)

    @property
    def number_format(self) -> str:
        return self.sheet.formats.get((self.row, self.column), "General")

    @number_format.setter
    def number_format(self, value: str) -> None:
        self.sheet.book.count("number format", self)
        for row in self._keys():
            for key in row:
                self.sheet.formats[key] = value

    def clear_contents(self) -> None:
        self.sheet.book.count("clear", self)
        for row in self._keys():
            for key in row:
                self.sheet.data.pop(key, None)


engine = Engine()


@dataclass
class Excel:
    """One fake Excel instance and the xlwings objects over it, for a test."""

    app: xw.App
    impl: App = field(repr=False)

    def open(self, path: str | Path) -> xw.Book:
        """Open a workbook file, as Excel would."""
        return xw.Book(impl=self.impl.books.open(str(path)))

    def new(self, name: str = "Book1.xlsx") -> xw.Book:
        """A new, unsaved workbook with one empty sheet named Sheet1."""
        return xw.Book(impl=self.impl.books.add(name))


def start_excel() -> Excel:
    """A fresh fake Excel application."""
    impl = engine.apps.add()
    return Excel(app=xw.App(impl=impl), impl=impl)


def book_impl(book: xw.Book) -> Book:
    """The engine object under an ``xw.Book`` (for counters and test set-up)."""
    impl = book.impl
    assert isinstance(impl, Book), f"{book!r} is not on the test engine"
    return impl


def sheet_impl(book: xw.Book, name: str) -> Sheet:
    """The engine object of sheet ``name`` (for placing formulas and errors)."""
    return book_impl(book).sheets(name)
