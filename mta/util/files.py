"""Replace a small file atomically: readers see the old content or the new, never a mix.

The data goes to a temporary file beside the target, which is then renamed over it. With
`durable`, the file and then its directory are fsynced, so the new content survives a crash
(main.cf edits); without, only atomicity is promised (status and statistics files that are
rewritten every second and mean nothing after a crash).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def replace_file(path: Path, data: bytes, *, durable: bool = False, mode: int = 0o600) -> None:
    """Atomically make `data` the content of `path`, with permission bits `mode`."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if durable:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
