"""Files saved in place of the file a user meant to send: a Git LFS pointer (the few lines of text
Git LFS keeps in a repository where the large file is) and an HTML page (a hosting site's page for
the file, saved by "Save link as" or by ``wget`` of the page's address). Both are common in place of
models and logs fetched from a repository, and a reader of the real format would refuse them in its
own terms ("Wire format was corrupt"); :func:`saved_instead` says what they are and how to fetch the
real file. The log door, the ONNX door and the Keras door share it.

Torch-free and service-free: only the standard library.
"""

from __future__ import annotations

__all__ = ["LFS_POINTER", "is_lfs_pointer", "saved_instead"]

#: The first line of every Git LFS pointer file (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md).
LFS_POINTER = b"version https://git-lfs.github.com/spec/"

#: How an HTML page starts, after any whitespace and a byte-order mark, lower-cased.
_HTML_STARTS = (b"<!doctype html", b"<html")


def _text_start(head: bytes) -> bytes:
    """``head`` without a UTF-8 byte-order mark and leading whitespace (a saved page often starts
    with blank lines: GitHub's starts with three)."""
    return head.removeprefix(b"\xef\xbb\xbf").lstrip()


def is_lfs_pointer(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a Git LFS pointer."""
    return _text_start(head).startswith(LFS_POINTER)


def saved_instead(head: bytes, what: str) -> str | None:
    """What a file starting with ``head`` is when it was saved in place of ``what`` (``"the model"``,
    ``"the log"``), and what to do instead, as words to follow "the file is "; None for any other
    file."""
    start = _text_start(head)
    if start.startswith(LFS_POINTER):
        return (f"a Git LFS pointer (the few lines of text Git LFS keeps in a repository in place of a large "
                f"file), not {what} itself: fetch the real file (`git lfs pull` in the repository it came "
                "from, or the hosting site's download link) and check that")
    if start[:len(_HTML_STARTS[0])].lower().startswith(_HTML_STARTS):
        return (f"an HTML page (a web page saved in place of {what}, such as a hosting site's page for the "
                f"file), not {what} itself: download the raw file (on GitHub the page's 'Download raw file' "
                "button, or its raw.githubusercontent.com address) and check that")
    return None
