"""Use cases and stores, in rooms by what they serve (docs/architecture.md draws the map).

- ``shared``: the plumbing every room uses (Redis key names and scripts, paging, which
  failures are outages);
- ``spine``: the reading path, from the ingestion key to the stored windows;
- ``accounts``: who someone is, what they may see, and the audit trail;
- ``alerts``: findings turned into alerts and incidents, notifications and the live feed;
- ``pricing``: tariffs, billing, payments and invoices;
- ``grid``: meters and regions, and what they consumed.

A room uses another only through its face (the room's ``__init__``), and only downwards:
alerts, pricing and grid above spine, spine above accounts, accounts above shared. The
import-linter contracts in setup.cfg hold both rules.
"""
