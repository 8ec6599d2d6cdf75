"""Another commit's simulator/ on disk, for a benchmark's A/B in one invocation (`--baseline-rev REV`).

`git archive REV simulator` unpacked into a fresh temporary directory: the tree a child process puts first on
sys.path (`--simulator-root`), without touching the checkout. The directory lives until the process exits.
"""

from __future__ import annotations

import atexit
import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

__all__ = ["BaselineExportError", "export_simulator"]

ROOT = Path(__file__).resolve().parents[1]


class BaselineExportError(Exception):
    """The revision cannot be exported (not a git checkout, unknown revision, no simulator/ in it)."""


def export_simulator(rev: str, repo: Path = ROOT) -> str:
    """A temporary directory holding `rev`'s simulator/ (removed at exit); BaselineExportError says why not."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", rev, "simulator"],
                             capture_output=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BaselineExportError(f"--baseline-rev {rev}: git archive failed: {exc}") from None
    if out.returncode != 0:
        reason = out.stderr.decode(errors="replace").strip().splitlines()
        raise BaselineExportError(f"--baseline-rev {rev}: {reason[-1] if reason else 'git archive failed'}")
    target = tempfile.mkdtemp(prefix=f"baseline-{rev[:12]}-")
    atexit.register(shutil.rmtree, target, True)
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(target, filter="data")
    if not (Path(target) / "simulator" / "__init__.py").is_file():
        raise BaselineExportError(f"--baseline-rev {rev}: no simulator/ package in that commit")
    return target
