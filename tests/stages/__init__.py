"""One module per stage (sql/NN_<stage>/), named after it, against a real PostgreSQL."""
