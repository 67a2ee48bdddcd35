"""Scheduling: the pure task graph and policy, and the loop that drives them."""
