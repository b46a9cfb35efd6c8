"""raw-to-ready runner: render the SQL in sql/, execute it stage by stage, hash it, report."""
