"""What every layer needs and nothing of enduro's own above it: errors, units, the clock,
event-loop helpers and atomic files. Modules here import only the standard library and
each other."""
