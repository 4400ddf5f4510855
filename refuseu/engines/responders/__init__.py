"""Responders: refusal templates and (later) generator engines for chosen/rejected."""
