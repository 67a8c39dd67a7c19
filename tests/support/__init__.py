"""Helpers shared by the tests: crafted files, scripted servers, the office suites."""
