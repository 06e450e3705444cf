"""The files of a GroupLens release, in a folder or a zip read in place, and their rows.

Which layout a release has is told by the ratings file it holds (see `grouplens.py`).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from shortrec_jax.data.dataset import DataError
from shortrec_jax.data.text_table import decode_text, parse_header, split_first_line, strip_bom

# The ratings file of each layout, in the order they are looked for.
LAYOUTS = {"u.data": "ml-100k", "ratings.dat": "::", "ratings.csv": "csv"}


class GroupLensFiles:
    """The files of one release, in a folder or a zip that is read in place.

    The files are those directly in the folder (or at the zip's root), else those of the first
    folder one level down that holds a ratings file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.members = self._folder_members(path)
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise DataError(
                    f"{path}: not a zip file (expected a GroupLens .zip or a folder)"
                ) from None
            self.members = self._zip_members(self._zip)
        else:
            raise DataError(f"{path}: no such folder or zip file")

    @staticmethod
    def _folder_members(path: Path) -> dict[str, str]:
        for folder in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
            files = {p.name: str(p) for p in folder.iterdir() if p.is_file()}
            if any(name in files for name in LAYOUTS):
                return files
        return {p.name: str(p) for p in path.iterdir() if p.is_file()}

    @staticmethod
    def _zip_members(zf: zipfile.ZipFile) -> dict[str, str]:
        by_folder: dict[str, dict[str, str]] = {}
        for member in zf.namelist():
            parts = PurePosixPath(member).parts
            if member.endswith("/") or len(parts) > 2 or parts[0] == "__MACOSX":
                continue
            by_folder.setdefault("/".join(parts[:-1]), {})[parts[-1]] = member
        for folder in sorted(by_folder):
            if any(name in by_folder[folder] for name in LAYOUTS):
                return by_folder[folder]
        return by_folder.get("", {})

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def has(self, name: str) -> bool:
        return name in self.members

    def source(self, name: str) -> str:
        """How messages name a file: its path, or the zip's path followed by the member."""
        member = self.members.get(name, name)
        return member if self._zip is None else f"{self.path}/{member}"

    def read(self, name: str) -> bytes:
        if name not in self.members:
            raise DataError(f"{self.path}: no {name} file (found {sorted(self.members)})")
        try:
            if self._zip is not None:
                return strip_bom(self._zip.read(self.members[name]))
            return strip_bom(Path(self.members[name]).read_bytes())
        except (OSError, zipfile.BadZipFile) as e:
            raise DataError(f"{self.source(name)}: cannot read ({e})") from None


def csv_rows(
    files: GroupLensFiles, file: str, columns: Sequence[str]
) -> list[tuple[int, list[str]]]:
    """(line, values of `columns`) of each row of a UTF-8 CSV file with a header row.

    For the text files (titles, tags) the csv module is used rather than `read_table`: a
    NumPy string table is as wide as its longest field in every row and column.
    """
    source = files.source(file)
    head, body = split_first_line(files.read(file))
    header = parse_header(head, source=source, delimiter=",", required=columns)
    positions = [header.index(c) for c in columns]
    text = decode_text(body, source=source, encoding="utf-8", first_line=2)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        for fields in reader:
            if not fields:
                continue
            line = reader.line_num + 1
            if len(fields) != len(header):
                raise DataError(
                    f"{source}, line {line}: expected {len(header)} fields "
                    f"({', '.join(header)}), got {len(fields)}"
                )
            rows.append((line, [fields[j] for j in positions]))
    except csv.Error as e:
        raise DataError(f"{source}, line {reader.line_num + 1}: {e}") from None
    return rows


def utf8_or_latin1(data: bytes) -> str:
    """ml-100k and ml-1m write Latin-1, later releases UTF-8: UTF-8 is tried first."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def split_rows(
    files: GroupLensFiles, file: str, sep: str, fields: Sequence[str]
) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each non-empty row of a small `sep`-separated file."""
    source = files.source(file)
    rows = []
    for k, line in enumerate(utf8_or_latin1(files.read(file)).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(sep)
        if len(parts) != len(fields):
            hint = "; the delimiter seems wrong" if len(parts) == 1 else ""
            raise DataError(
                f"{source}, line {k}: expected {len(fields)} fields ({', '.join(fields)}) "
                f"separated by {sep!r}, got {len(parts)}{hint}: {line[:80]!r}"
            )
        rows.append((k, parts))
    return rows
