"""The service-level objectives: one spec, the files generated from it."""
