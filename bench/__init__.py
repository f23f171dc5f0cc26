"""Side-by-side benchmark of que against its peers and raw SQL (not part of the test suite)."""
