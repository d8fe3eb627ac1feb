"""driftloop's extensions to LocalStack's open-source runtime (installed into ``.cache/localstack-venv``).

- ``lambda_executor``: Python zip Lambdas run as local processes under AWS's Runtime Interface Client
  (``LAMBDA_RUNTIME_EXECUTOR=driftloop-process``), built on ``runtime_process`` and ``runtime_api``; ``emf``
  turns their Embedded Metric Format log lines into CloudWatch metrics, as CloudWatch Logs does on AWS.
- ``s3_storage``: S3 object bytes under the instance's own directory (``PROVIDER_OVERRIDE_S3=driftloop``).
- ``info``: ``GET /_localstack/driftloop`` reports what is active.

LocalStack finds them through the entry points in ``../pyproject.toml``. This module, ``runtime_api``,
``runtime_process`` and ``emf`` (but for its ``publish``) import nothing from LocalStack, so they load (and are
unit-tested) in the project's own venv.
"""

__version__ = "0.1.0"
