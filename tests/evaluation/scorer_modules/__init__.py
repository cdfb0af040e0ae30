"""Real scorer modules for the tests, loaded through SCORER_MODULES like a user's own."""
