"""Rooms: creation, membership, and the timeline (the single append())."""
