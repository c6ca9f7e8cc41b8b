"""Operators of the Anaplan provider (see ``_base.py`` for the policy every long-running operator shares)."""

from __future__ import annotations

from .alm import AnaplanALMSyncOperator
from .bulk import (
    AnaplanExportAndDownloadOperator,
    AnaplanRunActionOperator,
    AnaplanRunProcessOperator,
    AnaplanUploadAndImportOperator,
)

__all__ = [
    "AnaplanALMSyncOperator",
    "AnaplanExportAndDownloadOperator",
    "AnaplanRunActionOperator",
    "AnaplanRunProcessOperator",
    "AnaplanUploadAndImportOperator",
]
