"""Dataset readers, the downloader, preprocessing and shards (import the submodules)."""
