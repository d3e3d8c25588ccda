"""The prerequisites stage: check, then create or repair, what a fleet's instances need."""
