"""A local AWS for driftloop: LocalStack in its own venv, with driftloop's extension (``cloud``, ``extension/``)."""
