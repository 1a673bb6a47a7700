"""Pricing: tariffs, billing and billing runs, payments and invoice documents. No other room
uses it."""
