"""Helpers for remedy's own tests: polling with a deadline, loopback servers, test accounts."""
