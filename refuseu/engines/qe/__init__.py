"""Translation quality: COMET (QE or round-trip), chrF round-trip, and cheap checks."""
