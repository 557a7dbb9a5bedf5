"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class DinostreamError(Exception):
    """Base of every error whose message names the problem and what to do about it."""

    exit_code = 2


class SourceError(DinostreamError):
    """A video source cannot be opened or read (missing file, corrupt media, unreachable URL)."""


class ModelLoadError(DinostreamError):
    """The embedding model cannot be loaded."""


class BrokerError(DinostreamError):
    """Kafka is unreachable, or the embedded broker failed to start."""


class IndexStoreError(DinostreamError):
    """The vector index cannot be opened or written."""
