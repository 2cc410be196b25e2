"""Getting the bytes: downloads (mirrors, resume, checksums), the cache, user config, archives, a user's own data.

One word, one meaning, in this package, its messages and its docs:

file        one remote file a Builder publishes (``dsreg.File``: name, size, checksum, URLs).
URL         where a file is published (``File.urls``), in any protocol fsspec reads.
mirror      a base URL or folder the user adds (``--mirror``, ``DSREG_MIRRORS``, the config file);
            a file's mirror URL is the base plus its name (``download.mirror_url``).
source      one place a file's bytes are read from: the ``--from`` path when given, else each
            mirror URL, then each published URL, tried in that order (``Downloader._sources``); a
            record's ``source`` is the one that delivered them, or ``"cache"`` when the blob was
            already there. Nothing else is called a source.
blob        a file's verified bytes in the cache, named by their sha256 (``downloads/<sha256>``,
            ``Cache.blob_path``), shared by every dataset that publishes the same bytes.
record      what the cache knows about one downloaded file of one dataset (``records.FileRecord``
            in ``files.json``): its blob, size, source, and how it was verified (``records.Status``:
            verified, candidate, pinned, unverified).
pin         the sha256 recorded for a file with no published checksum once its dataset prepared
            from those bytes, and required of every later download (``--force`` replaces it).
download    getting a file's bytes from a source into a blob, verified (``download.Downloader``).
fetch       download every file a dataset needs, then prepare it (``dsreg.fetch``, ``dsreg fetch``).
user data   the data at a user's own ``url`` (a folder, archive or file), read in place or downloaded
            as a pinned file (``userdata.UserData``; ``sources.Source`` in dsreg 0.1).

Modules: ``download`` (Downloader), ``cache`` (Cache and its layout), ``records`` (FileRecord,
Status), ``config`` (settings and user mirrors), ``archive`` (bounded streaming of tar and zip),
``userdata`` (a user's own data, class folders, the seeded holdout), ``objectstore`` (``s3://`` and
other fsspec protocols: the backend, its endpoint, one-line errors).
"""
