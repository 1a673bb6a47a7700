"""Alerts: the rules glue that stores findings (rules), the alert lifecycle, regional
incidents, notifications and their channels, and the live feed. No other room uses it."""
