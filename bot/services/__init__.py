"""Use cases. They take an engine or session, settings and a clock; never a channel library's objects."""
