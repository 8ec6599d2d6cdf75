"""Secret files (keys, credentials secrets, files holding the agent JWT): created 0600, never readable by
others even for an instant, written atomically (temporary name, then rename) so a reader never sees half a key.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_private"]


def write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)  # O_CREAT's mode is filtered by the umask; an existing tmp keeps its old mode
    os.replace(tmp, path)
