"""End to end: the worked example, the original project's files, real data, published content, the table catalogue."""
