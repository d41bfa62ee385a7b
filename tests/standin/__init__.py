"""Stand-ins for the engines (fakes at the engine boundary, held to the real engines by contract tests)."""
