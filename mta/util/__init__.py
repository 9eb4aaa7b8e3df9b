"""Generic primitives shared by every mta service (Postfix's src/util)."""
