"""Operators of the Anaplan provider (see ``_base.py`` for the policy every long-running operator shares)."""

from __future__ import annotations

from .bulk import AnaplanRunActionOperator, AnaplanRunProcessOperator

__all__ = ["AnaplanRunActionOperator", "AnaplanRunProcessOperator"]
