"""midl: reference framework for MID-L."""
