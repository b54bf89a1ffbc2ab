"""Rate limits per credential, shared by every API replica through Redis."""
