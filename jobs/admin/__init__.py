"""Administration: migrations, demo data, and hashing dashboard passwords."""
