"""Plan files: the pydantic model (:mod:`.models`), graph checks (:mod:`.graph`) and the loader
that reports every problem at once (:mod:`.validate`).

Import from the submodules; this package module stays empty so the channels model can use the
shared helpers here without an import cycle.
"""
