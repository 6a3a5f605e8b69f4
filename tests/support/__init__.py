"""Helpers shared by the tests (no test lives here): one fake clock, the relay as the tests build it,
and calling the registered functions the way the Functions worker does."""
