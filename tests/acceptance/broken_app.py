"""A module that fails while it is imported, for the bad-input tests."""

raise RuntimeError("boom while importing")
