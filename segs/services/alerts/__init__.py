"""Alerts: the rules glue that stores findings (rules), the alert lifecycle and the queries
that read alerts, regional incidents, notifications (planning who is told, the outbox that
makes each step safe to repeat, channels and the delivery log, digests, preferences and
webhooks), and the live feed. No other room uses it."""
