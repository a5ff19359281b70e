"""Read one data file (CSV or Parquet) so that nothing in it is lost or misread silently.

* An empty file is an absent table (the caller notes it), never an error for the directory.
* A file that is not UTF-8 is refused on its own, with the line of the first bad byte and a guess
  at what it is (``charset_normalizer``), unless the mapping declares its ``encoding``.  The guess
  is only shown, never applied: Latin-1 and cp1250 look alike to a detector, and reading one as
  the other would change names without a trace.
* A CSV line that cannot be split into the header's fields (an extra field, a quote that never
  closes) becomes a row with an ``_error`` and the ``_line`` it came from, so ingest quarantines
  it with its line number and the rest of the file is read.  A row with *fewer* fields than the
  header has its missing trailing fields empty, as most tools write them.

The fast path is pandas' C parser.  It truncates at NUL bytes, guesses an index column when a row
has one field too many and cannot name a bad line it skips, so its result is used only when the
file has no NUL byte, parses without an error or warning and has exactly one line per row (then
``line = row + 2`` is exact); anything else is read by the exact path (Python's ``csv``), which
knows each record's first line and resumes on the line after a bad record.
"""

from __future__ import annotations

import csv
import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

UTF8_BOM = b"\xef\xbb\xbf"


class FileRefused(Exception):
    """This file cannot be read at all; the message names it and says what to do."""


def read_data_file(path: Path, *, encoding: str | None = None, setting: str = "") -> pd.DataFrame | None:
    """The file's rows as text (CSV) or typed columns (Parquet), with ``_ref``; None if it is empty."""
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path)
    return read_csv(path, encoding=encoding, setting=setting)


def _read_parquet(path: Path) -> pd.DataFrame | None:
    if path.stat().st_size == 0:
        return None
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several kinds for a file that is not Parquet
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise FileRefused(f"{path.name}: not a readable Parquet file ({first[:200]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    _check_header(path, list(df.columns))
    df["_ref"] = [f"{path.name}:row {i + 1}" for i in range(len(df))]
    return df


def read_csv(path: Path, *, encoding: str | None = None, setting: str = "") -> pd.DataFrame | None:
    data = path.read_bytes()
    if not data.strip():
        return None
    text = decode(path, data, encoding, setting)
    if not text.strip():
        return None
    try:
        header = next(csv.reader(io.StringIO(text.split("\n", 1)[0] + "\n"), strict=True))
    except csv.Error as e:
        raise FileRefused(f"{path.name}: line 1: cannot read the header ({e})") from None
    header = [h.strip() for h in header]
    _check_header(path, header)
    utf8 = not encoding or encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig")
    df = None if "\x00" in text else _fast(data.removeprefix(UTF8_BOM) if utf8 else text, header)
    if df is None:
        df = _exact(path.name, text, header)
    else:
        df["_ref"] = f"{path.name}:line " + pd.Series(np.arange(2, len(df) + 2), index=df.index).astype(str)
    return df


def decode(path: Path, data: bytes, encoding: str | None, setting: str) -> str:
    if encoding:
        try:
            return data.decode(encoding).removeprefix("\ufeff")
        except LookupError:
            raise FileRefused(f"{path.name}: unknown encoding {encoding!r} ({setting})") from None
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise FileRefused(f"{path.name}: line {line}: not {encoding} text (byte 0x{data[e.start]:02x})") from None
    try:
        return data.removeprefix(UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as e:
        start = e.start + (len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0)
        line = data[:start].count(b"\n") + 1
        guess = _guess(data)
        looks = f"; it may be {guess} (a guess from its bytes)" if guess else ""
        name = guess or "ENCODING"
        raise FileRefused(
            f"{path.name}: line {line}: not UTF-8 text (byte 0x{data[start]:02x}){looks}. This file is skipped; "
            f"convert it (iconv -f {name} -t UTF-8) or declare its encoding with {setting or 'encoding'}: {name}"
        ) from None


def _guess(data: bytes) -> str | None:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - a dependency; the message still names the line and byte
        return None
    best = from_bytes(data[:200_000]).best()
    return best.encoding.replace("_", "-") if best is not None else None


def _check_header(path: Path, header: list[str]) -> None:
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise FileRefused(f"{path.name}: column {h!r} appears twice in the header")
        seen.add(h)


def _fast(content: str | bytes, header: list[str]) -> pd.DataFrame | None:
    """pandas' C parser (fed UTF-8 bytes when it can: faster than text), or None when its result
    could hide a bad line."""
    source = io.BytesIO(content) if isinstance(content, bytes) else io.StringIO(content)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""], index_col=False,
                             on_bad_lines="error", encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError):
        return None
    nl = "\n" if isinstance(content, str) else b"\n"
    lines = content.count(nl) + (0 if content.endswith(nl) else 1)  # type: ignore[arg-type]
    if lines != len(df) + 1 or len(df.columns) != len(header):
        return None  # a quoted value spans lines, or there are blank lines: take the exact path
    df.columns = header
    return df


class _Lines:
    """An iterator over physical lines that knows which line the csv reader will take next."""

    def __init__(self, lines: list[str], start: int) -> None:
        self.lines = lines
        self.pos = start

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1]


def _exact(name: str, text: str, header: list[str]) -> pd.DataFrame:
    """Record by record with Python's csv module; a bad record is kept as an ``_error`` row."""
    csv.field_size_limit(sys.maxsize)
    lines = [ln + "\n" for ln in text.split("\n")]
    if text.endswith("\n"):
        lines.pop()
    n = len(header)
    rows: list[list[str | None]] = []
    errors: list[str | None] = []
    raw_lines: list[str | None] = []
    numbers: list[int] = []
    src = _Lines(lines, 1)
    reader = csv.reader(src, strict=True)
    while True:
        start = src.pos
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            why = "a quote that never closes" if "end of data" in str(e) else str(e)
            _bad(rows, errors, raw_lines, numbers, n, start, f"line {start + 1}: cannot split the line into fields "
                                                           f"({why})", lines[start])
            src = _Lines(lines, start + 1)  # resume on the line after the bad record's first line
            reader = csv.reader(src, strict=True)
            continue
        if not rec or (len(rec) == 1 and not rec[0].strip() and n > 1):
            continue  # a blank line
        if len(rec) > n:
            _bad(rows, errors, raw_lines, numbers, n, start,
                 f"line {start + 1}: {len(rec)} fields where the header has {n}", lines[start])
            if src.pos - start > 1:  # the bad record swallowed later lines: read them again
                src = _Lines(lines, start + 1)
                reader = csv.reader(src, strict=True)
            continue
        rows.append([v if v != "" else None for v in rec] + [None] * (n - len(rec)))
        errors.append(None)
        raw_lines.append(None)
        numbers.append(start + 1)
    df = pd.DataFrame(rows, columns=header, dtype=object) if rows else pd.DataFrame(columns=header, dtype=object)
    df = df.fillna(value=np.nan)
    if any(e is not None for e in errors):
        df["_error"] = errors
        df["_line"] = raw_lines
    df["_ref"] = [f"{name}:line {k}" for k in numbers]
    return df


def _bad(rows: list[list[str | None]], errors: list[str | None], raw_lines: list[str | None], numbers: list[int],
         n: int, start: int, why: str, line: str) -> None:
    rows.append([None] * n)
    errors.append(why)
    raw_lines.append(line.rstrip("\r\n"))
    numbers.append(start + 1)
