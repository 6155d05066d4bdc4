"""Passes over tte graphs: memory planning (more to come: pruning, reordering, fusion)."""
