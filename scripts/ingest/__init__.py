"""Source files into raw.raw_events.

    sources.py   describe a file before any data work: hash, line breaks, header, rule columns
    cache.py     remember what describing a local file found (a daily run does not re-read history)
    copy.py      COPY each file into the landing table and on into raw.raw_events; the psql route
"""
