"""Billing: customers' invoices, payments and disputes; operators' runs, exports, analytics."""

from segs.web.billing.routes import bp

__all__ = ["bp"]
