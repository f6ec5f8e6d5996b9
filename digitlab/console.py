"""What digitlab draws on a terminal, with rich: live progress bars and tables. Where output goes to a file or a pipe,
no bar is drawn and tables are plain text, so logs and CI keep the lines each command prints.

    with console.bar("epoch 3/30", total=860) as task:       # steps
        task.update(advance=1, note="loss 0.1234  5,000 img/s")
    with console.bar("mnist t10k-images", total=7_840_016, unit="bytes") as task:
        task.update(advance=len(block))                       # shows MB done, MB total and MB/s
    console.table("confusion matrix", header, rows)          # a rich table, or aligned plain text

Bars nest (a lab's total over its runs, each run's epoch bar, each evaluation's bar): one rich display is shared
while any bar is open, so the terminal shows all of them at once, each line removed when its work is done.
DIGITLAB_PROGRESS=0 turns bars and rich tables off; =1 forces them on (the tests drive a pseudo-terminal with it
unset).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time


def wanted() -> bool:
    setting = os.environ.get("DIGITLAB_PROGRESS", "")
    return setting == "1" or (setting != "0" and sys.stderr.isatty())


class Task:
    """One bar's handle; `update` is cheap enough to call at every step (it redraws at most 8 times a second)."""

    def __init__(self, display, task_id, unit: str):
        self.display, self.task_id, self.unit = display, task_id, unit
        self.completed, self.last, self.start = 0.0, 0.0, time.perf_counter()
        self.live = display is not None

    def update(self, advance: float = 0, completed: float | None = None, note: str = "") -> None:
        self.completed = self.completed + advance if completed is None else completed
        now = time.perf_counter()
        if self.display is None or now - self.last < 0.125:
            return
        self.last = now
        if self.unit == "bytes" and not note:
            note = f"{self.completed / max(now - self.start, 1e-9) / 1e6:,.1f} MB/s"
        self.display.update(self.task_id, completed=self.completed, note=note)


class Display:
    """The one live rich display while any bar is open (rich allows a single live display per terminal)."""

    def __init__(self):
        self.progress, self.open = None, 0

    def start(self):
        if self.progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"),
                                     TextColumn("{task.fields[note]}"), TimeRemainingColumn(),
                                     console=Console(stderr=True), transient=True)  # fmt: skip
            self.progress.start()
        self.open += 1
        return self.progress

    def stop(self) -> None:
        self.open -= 1
        if self.open == 0 and self.progress is not None:
            self.progress.stop()
            self.progress = None


DISPLAY = Display()  # one terminal, one display: shared by every bar of the process


class CountsProgress:
    """Adapts a rich Progress so each task shows its counts in its own unit."""

    def __init__(self, progress, unit: str, total: float | None):
        self.progress, self.unit, self.total = progress, unit, total

    def update(self, task_id, completed: float, note: str) -> None:
        self.progress.update(task_id, completed=completed, counts=counts(completed, self.total, self.unit), note=note)


def counts(done: float, total: float | None, unit: str) -> str:
    if unit == "bytes":
        return f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB" if total else f"{done / 1e6:,.1f} MB"
    return f"{done:,.0f}/{total:,.0f} {unit}" if total else f"{done:,.0f} {unit}"


@contextlib.contextmanager
def bar(label: str, total: float | None, unit: str = "steps"):
    """A live bar for `total` units of work (None: unknown), or a handle that draws nothing off a terminal."""
    if not wanted():
        yield Task(None, None, unit)
        return
    progress = DISPLAY.start()
    task_id = progress.add_task(label, total=total, counts=counts(0, total, unit), note="")
    try:
        yield Task(CountsProgress(progress, unit, total), task_id, unit)
    finally:
        progress.remove_task(task_id)
        DISPLAY.stop()


def table(title: str, header: list[str], rows: list[list[str]], plain: str | None = None, log=print) -> None:
    """A table: drawn by rich on a terminal; elsewhere `plain` (e.g. Markdown) or right-aligned columns via `log`."""
    if log is print and wanted() and sys.stdout.isatty():  # rich draws only for a caller that prints
        from rich.console import Console
        from rich.table import Table

        shown = Table(title=title, title_justify="left", header_style="bold")
        for name in header:
            shown.add_column(name, justify="right")
        for row in rows:
            shown.add_row(*row)
        Console().print(shown)
        return
    if plain is None:
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
        plain = "\n".join("  ".join(str(c).rjust(w) for c, w in zip(line, widths)) for line in [header, *rows])
        plain = f"{title}:\n{plain}"
    log(plain)
