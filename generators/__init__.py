"""Synthetic scenes with known truth for the benches and the tests. Not part of the installed
package: `bench/` and `tests/` import it from the repository root."""
