"""State files that survive a kill, a torn write and a careless edit (ARCHITECTURE.md, Run folders and state).

- :func:`write_json`: atomic (temp file, fsync, rename, fsync of the folder), so a reader sees
  the old or the new file, never half of one; :func:`write_text_atomic` and
  :func:`write_bytes_atomic` for other files (:mod:`storage.torchfiles` for tensors).
- :func:`read_json`: parses and checks the shape (a JSON object, ``schema_version``, required
  fields and their types); every problem is a :class:`StateFileError` (a ``ValueError``) of one
  line naming the file and the field.
- :class:`CsvLog`: an append-only CSV table. A kill mid-append leaves a torn last line; before
  the next append the fragment is cut off and kept aside in ``<name>.torn`` (never glued onto a
  new row), and readers ignore it. A malformed row anywhere else is an error naming the line.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
              bool: "true/false"}


class StateFileError(ValueError):
    """A state file is missing a field, has the wrong shape, or is not parseable."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) atomically; on failure (e.g. a full disk) the old file stays."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically (temp file in the same folder, fsync, rename, fsync
    of the folder); on failure (e.g. a full disk) the old file stays."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected a file path to write")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise _write_error(path, exc) from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _write_error(path: Path, exc: OSError) -> OSError:
    """A one-line OSError (same class and errno) naming ``path``; the old file is untouched."""
    reason = exc.strerror or str(exc)
    return type(exc)(exc.errno, f"cannot write {path}: {reason}; the previous contents are unchanged") \
        if exc.errno is not None else type(exc)(f"cannot write {path}: {reason}; the previous contents are unchanged")


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: strict JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: str | Path, data: Mapping[str, Any], *, sort_keys: bool = False) -> None:
    """Write ``data`` as indented strict JSON, atomically (non-finite floats written as null)."""
    write_text_atomic(path, json.dumps(_json_safe(data), indent=2, sort_keys=sort_keys, allow_nan=False) + "\n")


def _type_name(value: Any) -> str:
    for kind, name in JSON_TYPES.items():
        if type(value) is kind:
            return name
    return "null" if value is None else type(value).__name__


def check_fields(data: Mapping[str, Any], fields: Mapping[str, type | tuple[type, ...]], where: str) -> None:
    """Raise :class:`StateFileError` naming ``where`` and the first missing or mistyped field.
    ``int`` is accepted where ``float`` is asked (JSON has one number type); ``bool`` is not an int."""
    for name, kinds in fields.items():
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        if float in kinds:
            kinds = (*kinds, int)
        if name not in data:
            raise StateFileError(f"{where}: field {name!r} is missing")
        value = data[name]
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            expected = " or ".join(JSON_TYPES.get(k, getattr(k, "__name__", str(k))) for k in kinds)
            raise StateFileError(f"{where}: field {name!r} is {_type_name(value)}; expected {expected}")


def read_json(path: str | Path, *, fields: Mapping[str, type | tuple[type, ...]] | None = None,
              schema_version: int | None = None, what: str = "state file") -> dict[str, Any]:
    """Read the JSON object in ``path`` and check its ``schema_version`` and ``fields``.

    Raises:
        FileNotFoundError: the file does not exist (or is a folder).
        StateFileError: not JSON, not an object, wrong version, a field missing or mistyped.
    """
    path = Path(path)
    if path.is_dir():
        raise StateFileError(f"{path} is a folder; expected the {what} (a JSON file)")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected the {what}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{path}: the {what} is not valid JSON ({exc})") from None
    except RecursionError:
        raise StateFileError(f"{path}: the {what} is nested too deeply to be a state file") from None
    if not isinstance(data, dict):
        raise StateFileError(f"{path}: the {what} is {_type_name(data)}; expected a JSON object")
    if schema_version is not None and data.get("schema_version") != schema_version:
        raise StateFileError(f"{path}: schema_version {data.get('schema_version')!r} is not supported; "
                             f"expected {schema_version}")
    check_fields(data, fields or {}, str(path))
    return data


def repair_torn_tail(path: str | Path) -> str | None:
    """Cut a torn last line (no final newline) off ``path`` and append it to ``<path>.torn``.

    Returns the fragment removed, or None when the file ends cleanly (or is absent/empty).
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return None
        data = _tail_bytes(handle)
        cut = data.rfind(b"\n") + 1
        size = handle.seek(0, os.SEEK_END)
        start = size - len(data) + cut
        handle.seek(start)
        fragment = handle.read()
        handle.truncate(start)
        handle.flush()
        os.fsync(handle.fileno())
    with path.with_name(path.name + ".torn").open("ab") as quarantine:
        quarantine.write(fragment + b"\n")
    return fragment.decode("utf-8", errors="replace")


def _tail_bytes(handle: io.BufferedRandom, chunk: int = 1 << 16) -> bytes:
    """The end of the file, grown backwards until it holds a newline (or the whole file)."""
    size = handle.seek(0, os.SEEK_END)
    read = min(size, chunk)
    while True:
        handle.seek(size - read)
        data = handle.read(read)
        if b"\n" in data or read == size:
            return data
        read = min(size, read * 2)


class CsvLog:
    """An append-only CSV table with fixed ``columns`` (header written once).

    ``append`` repairs a torn tail first, writes all rows or none (a failed write, e.g. a full
    disk, is cut back) and fsyncs; ``read`` checks the header and every row; ``rewrite``
    replaces the whole table atomically.
    """

    def __init__(self, path: str | Path, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)

    def _check_header(self) -> None:
        with self.path.open(newline="", errors="replace") as handle:
            header = next(csv.reader(handle), [])
        if tuple(header) != self.columns:
            raise StateFileError(f"{self.path}: header {header} does not match the expected columns "
                                 f"{list(self.columns)}")

    def _text(self, rows: list[Mapping[str, Any]], header: bool) -> str:
        for row in rows:
            extra = set(row) - set(self.columns)
            if extra:
                raise ValueError(f"{self.path}: row has unknown columns {sorted(extra)}; expected {list(self.columns)}")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.columns), lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append ``rows`` (dicts; keys outside ``columns`` are an error), flushed and fsynced."""
        rows = list(rows)
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a folder; expected the CSV table file")
        repair_torn_tail(self.path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            self._check_header()
        data = self._text(rows, header=new).encode()
        size = self.path.stat().st_size if self.path.exists() else 0
        try:
            with self.path.open("ab") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            self._cut_back(size)
            raise _write_error(self.path, exc) from None

    def _cut_back(self, size: int) -> None:
        """Undo a partial append (best effort; a leftover fragment is a torn tail)."""
        try:
            os.truncate(self.path, size)
        except OSError:
            pass

    def rewrite(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace the table by ``rows`` atomically (header included)."""
        write_text_atomic(self.path, self._text(list(rows), header=True))

    def read(self) -> pd.DataFrame:
        """The table (empty frame with ``columns`` when absent); a torn last line is ignored."""
        if self.path.is_dir():
            raise StateFileError(f"{self.path} is a folder; expected the CSV table file")
        if not self.path.exists() or self.path.stat().st_size == 0:
            return pd.DataFrame(columns=list(self.columns))
        try:
            text = self.path.read_text()
        except UnicodeDecodeError:
            raise StateFileError(f"{self.path}: not a text CSV file (undecodable bytes)") from None
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        if not text:
            return pd.DataFrame(columns=list(self.columns))
        lines = list(csv.reader(io.StringIO(text)))
        if not lines or tuple(lines[0]) != self.columns:
            raise StateFileError(f"{self.path}: header {lines[0] if lines else []} does not match the expected "
                                 f"columns {list(self.columns)}")
        for number, line in enumerate(lines[1:], start=2):
            if len(line) != len(self.columns):
                raise StateFileError(f"{self.path}: line {number} has {len(line)} fields; expected {len(self.columns)}")
        return pd.read_csv(io.StringIO(text), keep_default_na=True)

    def __len__(self) -> int:
        return len(self.read())
