"""The heavy benchmark app: numpy + pandas + scipy (about 300 MB installed)."""
