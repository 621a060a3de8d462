"""Thin routers: each parses, delegates and shapes the response."""
