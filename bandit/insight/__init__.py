"""What the log says to people: the report, the timeline, segments and the interval arithmetic
they share."""
