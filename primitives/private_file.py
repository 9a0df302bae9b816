"""Writing a small secret file (a key, a keystore entry) so that a crash never leaves half of it.

Meter key files and wallet keystore entries are both a few hundred bytes that must either exist
whole or not at all, be readable by their owner only, and (when new) never replace a file someone
already has: losing a key is worse than refusing to write one. Both clients share this writer.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a new directory entry durable (a crash right after must not lose the name); a platform
    without directory handles has nothing more to do."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write `data` to `path` so a crash leaves either no file / the old file, or the whole new one.

    The bytes go to a 0600 temporary file in the same directory, which is fsynced and then moved
    into place: by a hard link when `overwrite` is false (the link fails with FileExistsError if
    `path` exists, so two writers cannot both win), else by rename. The directory is fsynced so the
    new name is durable.
    """
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)      # FileExistsError (EEXIST) if the name is taken
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                # no hard links on this file system: check, then rename (a small race, but no link)
                if path.exists():
                    raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
                os.rename(tmp, path)
        fsync_dir(directory)
    finally:
        if tmp.exists():
            tmp.unlink()
