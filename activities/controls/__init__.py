"""Delivery controls checked at send time: suppression, quiet hours, caps, budgets, quotas."""
