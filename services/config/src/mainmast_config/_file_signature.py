"""What identifies one state of a file, so that a reader parses it again only when it changed."""

from __future__ import annotations

from pathlib import Path

FileSignature = tuple[int, int, int, int]
"""Inode, size, modification and change time (ns) of a file."""


def file_signature(path: Path) -> FileSignature | None:
    """The signature of `path`, or None when there is no file; OSError when it cannot be read.

    An editor that replaces the file changes the inode, one that rewrites it in place changes
    the times or the size; a Kubernetes ConfigMap update swaps a symlink, which `stat`
    follows to a new inode.
    """
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
