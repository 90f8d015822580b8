"""The scene decision engine (seed 004): scenes, instances, strategies, rules and tags."""
