"""Kopers: a self-hosted personal package archive for RPMs."""

__version__ = "0.2.0"
