"""The Glue Data Catalog over captured predictions and feedback, and the Athena workgroup that queries them.

One Glue database per deployment holds the tables ``functions.common.catalog`` describes (``captures`` and
``feedback``, partition projection over the hourly layout of ``functions.common.layout``: no crawler, no partition
to add). The workgroup enforces its configuration, so every query of the deployment writes its results SSE-S3
encrypted under ``s3://<data bucket>/<athena_results_prefix>``, is cancelled past the configured bytes scanned,
and runs on the engine version Athena picks (``AUTO``).

Other stacks use the catalog through :class:`SharedCatalog` (plain names, no cross-stack reference) and its
:meth:`SharedCatalog.grant_query`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.common.catalog import (
    CAPTURE_COLUMNS,
    CAPTURE_PARTITION_KEYS,
    CAPTURES_TABLE,
    FEEDBACK_COLUMNS,
    FEEDBACK_PARTITION_KEYS,
    FEEDBACK_TABLE,
    INPUT_FORMAT,
    JSON_SERDE,
    OUTPUT_FORMAT,
    Column,
    capture_partition_template,
    feedback_partition_template,
    projection_parameters,
)
from functions.common.layout import s3_location
from infra.config import AthenaConfig, DataConfig
from infra.grants import grant_prefix, objects_arn

# Athena's query actions, all on the workgroup.
QUERY_ACTIONS = (
    "athena:StartQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:StopQueryExecution",
)
# The catalog reads a query of a projected table makes (no partition is ever stored).
CATALOG_ACTIONS = ("glue:GetDatabase", "glue:GetTable", "glue:GetPartitions")
# What Athena does on the caller's behalf to write query results (multipart uploads of large results).
RESULT_UPLOAD_ACTIONS = ("s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")


@dataclass(frozen=True)
class SharedCatalog:
    """The deployment's catalog and workgroup as other stacks use them: names only, so a grant in another stack
    makes no cross-stack reference."""

    database_name: str
    workgroup_name: str
    capture_prefix: str
    feedback_prefix: str
    results_prefix: str

    @property
    def table_prefixes(self) -> dict[str, str]:
        """Each table's data prefix in the data bucket."""
        return {CAPTURES_TABLE: self.capture_prefix, FEEDBACK_TABLE: self.feedback_prefix}

    def grant_query(
        self, grantee: iam.IGrantable, bucket: s3.IBucket, *, tables: Sequence[str] = (CAPTURES_TABLE, FEEDBACK_TABLE)
    ) -> None:
        """What running Athena queries over ``tables`` needs, and nothing more: the query actions on this
        workgroup, the catalog reads on this database and those tables, reading their data, and reading and
        writing the query results (``bucket`` is the data bucket). Athena reads with the caller's permissions."""
        unknown = sorted(set(tables) - set(self.table_prefixes))
        if unknown or not tables:
            raise ValueError(f"grant_query: tables must be some of {sorted(self.table_prefixes)}, not {unknown}")
        principal = grantee.grant_principal
        principal.add_to_principal_policy(
            iam.PolicyStatement(actions=list(QUERY_ACTIONS), resources=[self.workgroup_arn])
        )
        principal.add_to_principal_policy(
            iam.PolicyStatement(actions=list(CATALOG_ACTIONS), resources=self.catalog_arns(tables))
        )
        for table in tables:
            grant_prefix(grantee, bucket, self.table_prefixes[table], "read")
        grant_prefix(grantee, bucket, self.results_prefix, "read-write")
        principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(RESULT_UPLOAD_ACTIONS), resources=[objects_arn(bucket, self.results_prefix)]
            )
        )
        principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn])
        )

    @property
    def workgroup_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:athena:{Aws.REGION}:{Aws.ACCOUNT_ID}:workgroup/{self.workgroup_name}"

    def catalog_arns(self, tables: Sequence[str]) -> list[str]:
        """The Data Catalog, the database and ``tables`` (Glue authorizes a table read on all three)."""
        glue_arn = f"arn:{Aws.PARTITION}:glue:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        return [
            f"{glue_arn}:catalog",
            f"{glue_arn}:database/{self.database_name}",
            *(f"{glue_arn}:table/{self.database_name}/{table}" for table in tables),
        ]


class CaptureCatalog(Construct):
    """The Glue database with the ``captures`` and ``feedback`` tables over ``bucket``, and the Athena workgroup."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        data: DataConfig,
        athena_config: AthenaConfig,
        database_name: str,
        workgroup_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.shared = SharedCatalog(
            database_name=database_name,
            workgroup_name=workgroup_name,
            capture_prefix=data.capture_prefix,
            feedback_prefix=data.feedback_prefix,
            results_prefix=data.athena_results_prefix,
        )
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=database_name, description="driftloop: captured predictions and their ground-truth feedback"
            ),
        )
        self.tables = {
            CAPTURES_TABLE: self._table(
                CAPTURES_TABLE,
                "Captured predictions: one row per served instance, JSON lines written by Firehose",
                bucket,
                data.capture_prefix,
                capture_partition_template(data.capture_prefix),
                CAPTURE_COLUMNS,
                CAPTURE_PARTITION_KEYS,
                injected_version=True,
            ),
            FEEDBACK_TABLE: self._table(
                FEEDBACK_TABLE,
                "Ground-truth feedback about captured predictions, JSON lines written by Firehose",
                bucket,
                data.feedback_prefix,
                feedback_partition_template(data.feedback_prefix),
                FEEDBACK_COLUMNS,
                FEEDBACK_PARTITION_KEYS,
                injected_version=False,
            ),
        }
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=workgroup_name,
            description="driftloop: queries over captured predictions and feedback",
            state="ENABLED",
            # Deleting the stack deletes the workgroup even with saved queries in it (the data stays in S3).
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                # Clients cannot override where results go, their encryption or the cutoff.
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=athena_config.bytes_scanned_cutoff_gb * 10**9,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(selected_engine_version="AUTO"),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=s3_location(bucket.bucket_name, data.athena_results_prefix),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                    expected_bucket_owner=Aws.ACCOUNT_ID,
                ),
            ),
        )
        # Pure metadata over the bucket's data: deleting the stack must free the names for the next deployment.
        for resource in (self.database, *self.tables.values(), self.workgroup):
            resource.apply_removal_policy(RemovalPolicy.DESTROY)

    @property
    def database_name(self) -> str:
        return self.shared.database_name

    @property
    def workgroup_name(self) -> str:
        return self.shared.workgroup_name

    def _table(
        self,
        name: str,
        description: str,
        bucket: s3.IBucket,
        prefix: str,
        partition_template: str,
        columns: Sequence[Column],
        partition_keys: Sequence[Column],
        *,
        injected_version: bool,
    ) -> glue.CfnTable:
        table = glue.CfnTable(
            self,
            name.capitalize() + "Table",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=name,
                description=description,
                table_type="EXTERNAL_TABLE",
                parameters={
                    "EXTERNAL": "TRUE",
                    **projection_parameters(
                        s3_location(bucket.bucket_name, partition_template), injected_version=injected_version
                    ),
                },
                partition_keys=[_column(column) for column in partition_keys],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=[_column(column) for column in columns],
                    location=s3_location(bucket.bucket_name, prefix),
                    input_format=INPUT_FORMAT,
                    output_format=OUTPUT_FORMAT,
                    compressed=True,
                    serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library=JSON_SERDE),
                ),
            ),
        )
        table.node.add_dependency(self.database)
        return table


def _column(column: Column) -> glue.CfnTable.ColumnProperty:
    return glue.CfnTable.ColumnProperty(name=column.name, type=column.type, comment=column.comment)
