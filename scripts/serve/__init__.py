"""What reads the published rows, never writing them.

    retrieve.py      features as of any instant for a CSV of entities (make retrieve)
    export.py        the training set to Parquet with a manifest (make export)
    training_set.py  the training set's columns, their Parquet types, the COPY stream in row groups
    train.py         seeded baseline models and their metrics (make train)
"""
