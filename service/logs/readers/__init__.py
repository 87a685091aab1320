"""Log readers, one module per format, all registered here.

Each reader is a module-level object following :class:`Reader`: ``sniff`` looks at a file's name
and first bytes and says how sure it is that the file is its format (0..1); ``read`` turns the file
into a :class:`gradhealth.logs.series.RunLog`. :func:`read_log` picks a reader by content (or by an
explicit hint) and also handles folders and archives.
"""
