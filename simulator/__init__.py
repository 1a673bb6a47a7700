"""Load generator for SEGS: simulated smart meters sending readings over HTTP or to the queue."""
