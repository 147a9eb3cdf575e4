"""Service layer: what the routes, the CLI and the workers do with the database and the blob store.

Functions take a `Session` (and a `BlobStore` where blobs are involved), never commit (the caller owns the
transaction), and raise `backend.services.errors.ServiceError` subclasses that the API turns into 4xx/503.
"""
