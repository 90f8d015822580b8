"""Audiences: saved shard sets in Redis (:mod:`.shard_sets`) and their resolution into runs."""
