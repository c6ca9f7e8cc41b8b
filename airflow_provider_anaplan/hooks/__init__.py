"""Airflow hooks of the Anaplan provider."""

from .anaplan import AnaplanHook

__all__ = ["AnaplanHook"]
