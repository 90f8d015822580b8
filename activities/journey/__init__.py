"""Activities of the journey graph: routing pages, waits on events, exits and goals."""
