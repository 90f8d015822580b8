"""The tag registry: typed user attributes that rules read (seed 004)."""
