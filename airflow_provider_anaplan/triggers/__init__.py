"""Triggers of the Anaplan provider (they run in Airflow's triggerer)."""

from __future__ import annotations

from .anaplan import AnaplanSyncTaskTrigger, AnaplanTaskTrigger

__all__ = ["AnaplanSyncTaskTrigger", "AnaplanTaskTrigger"]
