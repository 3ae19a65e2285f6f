"""PyFlink DataStream jobs: short wiring files (source -> transforms -> sinks)."""
