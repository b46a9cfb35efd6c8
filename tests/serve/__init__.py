"""What reads the published rows: retrieval, export, training."""
