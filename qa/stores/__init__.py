"""Where passages and vectors live: the embedded FAISS store (the default) or PostgreSQL + pgvector."""


def describe(settings) -> str:
    """Where an index lives, for messages: its folder, or its database's URL without the password."""
    from .postgres import describe_url, is_database_url

    return describe_url(settings.store) if is_database_url(settings.store) else str(settings.index)
