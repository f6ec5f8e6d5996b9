"""Files written so that nothing is ever half-written: `atomic_write` writes beside the target and renames it into
place only when the whole content is on disk (the rename flushed too), so a crash, a full disk or Ctrl-C leaves the
previous file as it was. Every output of digitlab (checkpoints, run folders, reports, exports, CSVs) goes through it.

`hold_lock` and `is_locked`: an exclusive `flock` on a lock file, which the kernel releases when its holder closes
it or dies, however it dies (a holder that closes it removes the file too); a run folder being trained and a Ray
task's scratch folder are held so.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import DigitlabError

_UMASK = os.umask(0)
os.umask(_UMASK)


def fsync_folder(folder: Path) -> None:
    """Flush a directory entry (a rename) to disk; a no-op where directories cannot be opened (Windows)."""
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


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb"):
    """Yield a file object; the target appears (renamed into place) only if the block completes."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise DigitlabError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
        fsync_folder(path.parent)  # the rename itself survives a power cut
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk, a file-size limit, a read-only folder: the user's to fix
            raise DigitlabError(f"cannot write {path}: {e.strerror or e}; the previous file is unchanged") from None
        raise


class HeldLock:
    """An exclusive flock held on a lock file; `close` removes the file, then lets go (nothing left behind)."""

    def __init__(self, file, path: Path):
        self.file, self.path = file, Path(path)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # first: a process that opened the old file sees it gone and takes a new one
        self.file.close()


def hold_lock(path: Path) -> HeldLock | None:
    """An exclusive flock on `path` (created if missing), held until closed or until this process ends, however it
    ends. BlockingIOError when a live process holds it. None, no guard, where there is no lock to take: no flock
    (Windows), a file system without it (some network and FUSE mounts), a folder that cannot be written (whatever
    writes there next reports that)."""
    try:
        import fcntl
    except ImportError:
        return None
    while True:
        try:
            file = open(path, "a")  # noqa: SIM115 (held open, and so locked, by the HeldLock)
        except OSError:
            return None
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(file.fileno()).st_ino == os.stat(path).st_ino:
                return HeldLock(file, path)
        except FileNotFoundError:
            pass  # removed by its last holder as this process locked it: lock the file there now
        except BlockingIOError:
            file.close()
            raise
        except OSError:  # ENOLCK, EOPNOTSUPP: this file system keeps no locks
            file.close()
            return None
        file.close()


def is_locked(path: Path) -> bool:
    """Whether a live process holds `path`'s flock (a missing file is not locked; an unheld one is removed)."""
    if not Path(path).is_file():
        return False
    try:
        lock = hold_lock(path)
    except BlockingIOError:
        return True
    if lock is not None:
        lock.close()  # taken only to test it
    return False
