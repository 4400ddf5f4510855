"""Pipeline stages: each one a table -> (kept, rejected) transform with declared columns."""
