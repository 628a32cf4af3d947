"""One store class per concern; SQL is written once, with $1 placeholders, for both engines."""
