"""Engines behind small protocols: translators, responders (and later qe, lid, judges)."""
