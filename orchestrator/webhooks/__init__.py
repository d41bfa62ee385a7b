"""Webhook administration: owners' signing secrets, the record of deliveries, redelivery."""
