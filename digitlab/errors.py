"""The one error type users see: a problem with their input, reported without a traceback.

Every reader and loader raises `DigitlabError` (or its `DataError` subclass) with a message naming the file, the
place in it (row, column or byte offset) and what was expected. The CLI turns it into one line on stderr and exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class DigitlabError(Exception):
    """A usage or input problem the user can fix; the CLI exits with code 2."""


class DataError(DigitlabError):
    """A malformed data file: `where` is e.g. 'row 12, column 3' or 'byte 16'."""

    def __init__(self, path: str | Path, where: str | None, problem: str):
        self.path = str(path)
        self.where = where
        self.problem = problem
        location = f"{self.path}, {where}" if where else self.path
        super().__init__(f"{location}: {problem}")

    def __reduce__(self):  # picklable with its own arguments: errors cross process and Ray task boundaries
        return type(self), (self.path, self.where, self.problem)


class Interrupted(DigitlabError):
    """Work stopped on Ctrl-C after saving a checkpoint; the message says how to resume. The CLI exits with 130."""
