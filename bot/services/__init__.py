"""Use cases. They take an engine or session, settings and a clock; never telegram objects."""
