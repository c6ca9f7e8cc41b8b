"""Sensors of the Anaplan provider."""

from __future__ import annotations

from .anaplan import AnaplanTaskStatusSensor

__all__ = ["AnaplanTaskStatusSensor"]
