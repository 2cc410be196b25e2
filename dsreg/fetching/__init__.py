"""Getting the bytes: download (mirrors, resume, checksums), the cache, user config, archives, user sources."""
