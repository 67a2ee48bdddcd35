"""Postgres access: the pool, the migrations runner and the store (the only SQL caller)."""
