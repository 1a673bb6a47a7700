"""The grid's registry and read models: meters, regions, what they consumed, the admin
statistics, and the demo seed. No other room uses it."""
