"""Models as catalog data: versions, context windows, modalities and the deployments that serve
each; offers that refer to a model; the model version and the deployment that served a request,
and usage per model

Revision ID: 0024
Revises: 0023
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("handler_id", sa.Text(), nullable=False),
        sa.Column("provider_model", sa.Text(), nullable=False),
        sa.Column("context_window", sa.Integer(), nullable=False),
        sa.Column("max_output_tokens", sa.Integer(), nullable=False),
        sa.Column(
            "input_modalities",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{text}'::text[]"),
            nullable=False,
        ),
        sa.Column(
            "output_modalities",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{text}'::text[]"),
            nullable=False,
        ),
        sa.Column("tokenizer", sa.Text(), nullable=True),
        sa.Column(
            "deployments",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("max_attempts", sa.Integer(), server_default="4", nullable=False),
        sa.Column("cooldown_s", sa.Float(), server_default="30", nullable=False),
        sa.Column("idempotent", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["handler_id"], ["handlers.id"], name=op.f("fk_models_handler_id_handlers")
        ),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_models")),
        sa.CheckConstraint(
            "context_window >= 1 AND max_output_tokens >= 1 "
            "AND max_output_tokens <= context_window",
            name=op.f("ck_models_token_limits"),
        ),
    )
    # One default version per model name.
    op.create_index(
        "uq_models_default", "models", ["name"], unique=True, postgresql_where=sa.text("is_default")
    )
    op.add_column("offers", sa.Column("model", sa.Text(), nullable=True))
    op.add_column("offers", sa.Column("model_version", sa.Text(), nullable=True))
    op.add_column("requests", sa.Column("model", sa.Text(), nullable=True))
    op.add_column("requests", sa.Column("model_version", sa.Text(), nullable=True))
    op.add_column("requests", sa.Column("deployment", sa.Text(), nullable=True))
    op.add_column("usage_hourly", sa.Column("model", sa.Text(), server_default="", nullable=False))
    op.drop_constraint(op.f("pk_usage_hourly"), "usage_hourly", type_="primary")
    op.create_primary_key(
        op.f("pk_usage_hourly"),
        "usage_hourly",
        ["hour", "user_id", "handler_id", "integration", "offer", "model"],
    )


def downgrade() -> None:
    # Rows that differ only by model fold into one.
    op.execute(
        """
        CREATE TEMP TABLE usage_folded ON COMMIT DROP AS
        SELECT hour, user_id, handler_id, integration, offer, sum(requests) AS requests,
               sum(succeeded) AS succeeded, sum(failed) AS failed, sum(credits) AS credits,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cost) AS cost
        FROM usage_hourly GROUP BY 1, 2, 3, 4, 5
        """
    )
    op.execute("DELETE FROM usage_hourly")
    op.drop_constraint(op.f("pk_usage_hourly"), "usage_hourly", type_="primary")
    op.drop_column("usage_hourly", "model")
    op.create_primary_key(
        op.f("pk_usage_hourly"),
        "usage_hourly",
        ["hour", "user_id", "handler_id", "integration", "offer"],
    )
    op.execute(
        """
        INSERT INTO usage_hourly (hour, user_id, handler_id, integration, offer, requests,
                                  succeeded, failed, credits, input_tokens, output_tokens, cost)
        SELECT * FROM usage_folded
        """
    )
    op.drop_column("requests", "deployment")
    op.drop_column("requests", "model_version")
    op.drop_column("requests", "model")
    op.drop_column("offers", "model_version")
    op.drop_column("offers", "model")
    op.drop_index("uq_models_default", table_name="models")
    op.drop_table("models")
