"""Request and response models of the HTTP API (pydantic), kept apart from the ORM tables."""
