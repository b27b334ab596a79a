"""Where passages and vectors live: the embedded FAISS store (the default) or PostgreSQL + pgvector."""
