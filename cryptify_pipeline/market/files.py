"""Hourly candles from files: Binance's public kline dumps and plain OHLCV CSVs.

``CRYPTIFY_SOURCE=file:<dir or glob>``. A directory is searched recursively for ``.csv`` and
``.zip`` files; a glob must match only such files. Binance dumps (``BTCUSDT-1h-2024-01.csv``
monthly, ``BTCUSDT-1h-2024-01-15.csv`` daily) come as ``.csv`` or the ``.zip`` they are
published in; the formats are in ``candle_csv``.

The symbol comes from the file name, exactly (``symbol_for_file``): the pair, optionally
followed by the interval and date as Binance names its dumps; a name that goes on after a pair
with anything else (``BTCUSDT_PERP-1h-2024-01.zip``, a perpetual future) is refused. Files of
another interval than 1h, and files whose name carries a date outside the asked range, are not
opened. What is read is bounded: a file, or the ``.csv`` members of a zip together, may hold at
most ``MAX_FILE_BYTES`` uncompressed (a zip's sizes are checked before anything is
decompressed) and ``candle_csv.MAX_ROWS`` rows (counted before each member is parsed); a zip
may hold at most ``MAX_ZIP_MEMBERS`` members, and be at most ``MAX_FILE_BYTES`` itself.
"""

from __future__ import annotations

import glob
import logging
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from cryptify_pipeline.market.candle_csv import (
    MAX_ROWS,
    CandleFileError,
    count_rows,
    read_candle_csv,
)
from cryptify_pipeline.market.candles import empty_candles, typed_candles

__all__ = [
    "MAX_FILE_BYTES", "MAX_ZIP_MEMBERS", "CandleFileError", "FileSource", "symbol_for_file",
]  # fmt: skip

log = logging.getLogger(__name__)

# A monthly 1h dump is ~110 KB and 22 years of hours ~35 MB; a zip member that expands past
# this is refused before it is decompressed (a 727 KB zip once expanded to 3.4 GB in memory).
MAX_FILE_BYTES = 64 * 2**20
_SIZE_CAP = f"a candle file may hold at most {MAX_FILE_BYTES // 2**20} MiB uncompressed"
# Each member is parsed on its own, ~20 ms of CPU however small: a 0.44 MB zip of 3,000
# one-row members took 50 s (3.8 h projected at the size cap). Binance's zips hold one dump;
# this leaves room for a year of daily dumps (366) in one zip: ~10 s at the cap.
MAX_ZIP_MEMBERS = 400
_SUFFIXES = {".csv", ".zip"}
# What may follow the pair in a file's name: Binance's interval (1s ... 1w, 1mo), then the
# dump's month or day (BTCUSDT-1h-2024-01, BTCUSDT-1h-2024-01-15); or nothing (BTCUSDT.csv)
_AFTER_PAIR = re.compile(
    r"(?:-(?P<interval>\d+(?:mo|[smhdwM]))"
    r"(?:-(?P<year>\d{4})-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?)?"
)
# what reading a damaged or unsupported zip member raises (zlib.error: corrupt deflate data;
# RuntimeError: encrypted; NotImplementedError: unknown compression; EOFError: truncated)
_ZIP_DATA_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


class FileSource:
    """Candles from the files matching ``location`` (a directory or a glob)."""

    def __init__(
        self, location: str, max_zip_members: int = MAX_ZIP_MEMBERS, max_rows: int = MAX_ROWS
    ):
        self.location = location
        self.name = f"file:{location}"
        self.max_zip_members = max_zip_members
        self.max_rows = max_rows  # per file, whatever its members

    def files(self) -> list[Path]:
        path = Path(self.location).expanduser()
        if path.is_dir():
            found = [p for p in path.rglob("*") if p.suffix.lower() in _SUFFIXES]
        else:
            found = [Path(p) for p in glob.glob(str(path), recursive=True)]
        if not found:
            raise CandleFileError(f"no .csv or .zip files at {self.location!r}")
        for candidate in found:
            _refuse_unless_candle_file(candidate, self.location)
        return sorted(found)

    def fetch(self, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        frames = []
        for path in self.files():
            named = _named_after(path, symbols)
            if named is None:
                log.debug("skipping %s: its name is not one of %s", path, list(symbols))
                continue
            symbol, after_pair = named
            if not _may_cover(path, after_pair, start, end):
                continue
            for name, text in self._csv_texts(path):
                # every row of the file is checked before the asked hours are cut out of it
                frame = read_candle_csv(text, symbol, source_name=name)
                frames.append(frame[(frame["ts"] >= start) & (frame["ts"] < end)])
        if not frames:
            return empty_candles()
        # monthly and daily dumps may overlap: identical rows are one candle, differing ones
        # are left for validation to reject as duplicates
        return typed_candles(pd.concat(frames).drop_duplicates())

    def _csv_texts(self, path: Path) -> Iterator[tuple[str, str]]:
        """(name, text) of the file, or of each ``.csv`` member of a zip
        (``archive.zip!member``)."""
        try:
            if path.suffix.lower() != ".zip":
                _refuse_size(path.stat().st_size, str(path))
                with path.open("rb") as stream:
                    text = _decode(_read_capped(stream, str(path)), str(path))
                self._refuse_rows(count_rows(text), path)
                yield str(path), text
                return
            yield from self._zip_texts(path)
        except OSError as error:
            raise CandleFileError(f"{path}: cannot be read ({error.strerror or error})") from None

    def _zip_texts(self, path: Path) -> Iterator[tuple[str, str]]:
        if (size := path.stat().st_size) > MAX_FILE_BYTES:
            # its directory is read whole when it is opened
            raise CandleFileError(
                f"{path}: {size:,} bytes; a candle zip may be at most {MAX_FILE_BYTES // 2**20} MiB"
            )
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise CandleFileError(f"{path}: not a readable zip archive") from None
        with archive:
            entries = archive.infolist()
            if len(entries) > self.max_zip_members:
                raise CandleFileError(
                    f"{path}: {len(entries):,} members; a candle zip may hold at most "
                    f"{self.max_zip_members:,} (Binance's dumps hold one; each member is parsed "
                    "on its own)"
                )
            members = [m for m in entries if m.filename.lower().endswith(".csv") and not m.is_dir()]
            if not members:
                raise CandleFileError(f"{path}: the zip holds no .csv file")
            # the sizes the archive declares; zipfile never returns more than a member declares
            _refuse_size(sum(m.file_size for m in members), f"{path} (its .csv members)")
            rows = 0
            for member in members:
                name = f"{path}!{member.filename}"
                try:
                    with archive.open(member) as stream:
                        data = _read_capped(stream, name)
                except _ZIP_DATA_ERRORS as error:
                    problem = f"corrupt or unsupported zip data ({error})"
                    raise CandleFileError(f"{name}: {problem}") from None
                text = _decode(data, name)
                # counted before the member is parsed: the cap is the file's, not each member's
                rows += count_rows(text)
                self._refuse_rows(rows, path, "its .csv members hold")
                yield name, text

    def _refuse_rows(self, rows: int, path: Path, holding: str = "it holds") -> None:
        if rows > self.max_rows:
            raise CandleFileError(
                f"{path}: {holding} more than {self.max_rows:,} rows; a candle file may hold at "
                f"most {self.max_rows:,} rows, in one zip member or many"
            )


def _refuse_unless_candle_file(path: Path, location: str) -> None:
    if path.is_dir():
        raise CandleFileError(
            f"{path}: is a directory; {location!r} must match .csv or .zip files "
            "(or name a directory alone to read every .csv and .zip file under it)"
        )
    if not path.is_file():
        raise CandleFileError(f"{path}: not a regular file")
    if path.suffix.lower() not in _SUFFIXES:
        raise CandleFileError(f"{path}: not a .csv or .zip file; {location!r} matched it")


def symbol_forms(symbol: str) -> tuple[str, ...]:
    """How a file name may spell ``BASE/QUOTE``: ``BASEQUOTE``, ``BASE-QUOTE``, ``BASE_QUOTE``."""
    base, quote = symbol.upper().split("/")
    return (f"{base}{quote}", f"{base}-{quote}", f"{base}_{quote}")


def symbol_for_file(path: Path, symbols: Sequence[str]) -> str | None:
    """The configured symbol ``path`` is named after, if any.

    The name up to its first ``.`` must be one of the symbol's forms (case-insensitive), alone
    or followed by Binance's interval and date: ``BTCUSDT-1h-2024-01.zip``, ``BTC-USDT.csv``
    and ``btc_usdt.csv`` are BTC/USDT; ``BTCUSDTPERP-1h-2024-01.zip`` is not, nor is
    ``BTCUSDC-1h-2024-01.zip`` BTC/USD. A name that goes on after a form with ``-`` or ``_``
    and anything else (``BTCUSDT_PERP-1h-2024-01.zip``, Binance's perpetual; ``BTCUSD_PERP``,
    its COIN-M one) is refused, naming the file: it is another market's, or misnamed.
    """
    named = _named_after(path, symbols)
    return named[0] if named else None


def _named_after(path: Path, symbols: Sequence[str]) -> tuple[str, re.Match[str]] | None:
    """(symbol, what follows its pair in the name) for ``symbol_for_file``."""
    stem = path.name.split(".", 1)[0]
    matches: dict[str, re.Match[str]] = {}
    misnamed: list[tuple[str, str, str]] = []
    for symbol in symbols:
        for form in symbol_forms(symbol):
            if stem[: len(form)].upper() != form:
                continue
            rest = stem[len(form) :]
            if (after := _AFTER_PAIR.fullmatch(rest)) is not None:
                matches[symbol] = after
            elif rest[:1] in ("-", "_"):
                misnamed.append((stem[: len(form)], symbol, rest))
    if not matches and misnamed:
        pair, symbol, rest = misnamed[0]
        forms = symbol_forms(symbol)
        raise CandleFileError(
            f"{path}: the name goes on after {pair} ({symbol}) with {rest!r}, which is not an "
            f"interval and date as Binance names its dumps (a perpetual's or another market's "
            f"file is not {symbol}); name it {forms[0]}.csv, {forms[1]}.csv or as Binance's "
            f"dumps are, {forms[0]}-1h-2024-01.zip"
        )
    if len(matches) > 1:
        fits = sorted(matches)
        raise CandleFileError(
            f"{path}: the name fits {' and '.join(fits)}; name it BASE-QUOTE (e.g. "
            f"{symbol_forms(fits[0])[1]}.csv)"
        )
    return next(iter(matches.items()), None)


def _may_cover(path: Path, name: re.Match[str], start: datetime, end: datetime) -> bool:
    """Whether the file, whose name after its pair is ``name``, may hold 1h candles in
    [start, end)."""
    if name["interval"] not in (None, "1h"):
        log.warning("skipping %s: interval %s, not 1h", path, name["interval"])
        return False
    if name["year"] is None:
        return True
    year, month = int(name["year"]), int(name["month"])
    try:
        if name["day"]:
            first = datetime(year, month, int(name["day"]), tzinfo=UTC)
            last = first + pd.Timedelta(days=1)
        else:
            first = datetime(year, month, 1, tzinfo=UTC)
            last = first + pd.DateOffset(months=1)
    except ValueError:
        raise CandleFileError(f"{path}: its name's date is not a date") from None
    return first < end and last > start


def _refuse_size(size: int, name: str) -> None:
    if size > MAX_FILE_BYTES:
        raise CandleFileError(f"{name}: {size:,} bytes uncompressed; {_SIZE_CAP}")


def _read_capped(stream: BinaryIO, name: str) -> bytes:
    data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise CandleFileError(f"{name}: more than {MAX_FILE_BYTES:,} bytes; {_SIZE_CAP}")
    return data


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")  # a byte-order mark (spreadsheet exports) is dropped
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise CandleFileError(
            f"{name}: line {line}: not UTF-8 text (byte 0x{data[error.start]:02x})"
        ) from None
