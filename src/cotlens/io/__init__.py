"""Files and provenance: atomic writes, Parquet and its schemas, resumable shards, fingerprints, figure files."""
