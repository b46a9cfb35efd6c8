"""The JSON, HTML and JUnit reports, and alerts."""
