"""Completion webhooks: users' endpoints, the signing secret of one-off URLs, and the deliveries
(the webhook outbox: one row per event and destination, written with the final state it reports)
with their attempts

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE webhook_endpoints (
            id uuid PRIMARY KEY,
            user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            url text NOT NULL,
            events text[] NOT NULL,
            description text NOT NULL DEFAULT '',
            secret text NOT NULL,
            previous_secret text,
            previous_until timestamptz,
            enabled boolean NOT NULL DEFAULT true,
            disabled_reason text,
            failing_since timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_webhook_endpoints_events CHECK (cardinality(events) > 0)
        )
        """
    )
    op.execute("CREATE INDEX ix_webhook_endpoints_user ON webhook_endpoints (user_id)")
    op.execute(
        """
        CREATE TABLE webhook_secrets (
            user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
            secret text NOT NULL,
            previous_secret text,
            previous_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("ALTER TABLE requests ADD COLUMN webhook_url text")
    op.execute(
        """
        CREATE TABLE webhook_deliveries (
            id uuid PRIMARY KEY,
            user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            endpoint_id uuid REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            url text,
            request_id uuid,
            event text NOT NULL,
            payload text NOT NULL,
            status text NOT NULL DEFAULT 'pending',
            attempts integer NOT NULL DEFAULT 0,
            retry_from timestamptz NOT NULL DEFAULT now(),
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            locked_until timestamptz,
            last_attempt_at timestamptz,
            last_status_code integer,
            last_error text,
            delivered_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_webhook_deliveries_status
                CHECK (status IN ('pending', 'delivered', 'failed')),
            CONSTRAINT ck_webhook_deliveries_target
                CHECK ((endpoint_id IS NULL) <> (url IS NULL))
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (next_attempt_at) "
        "WHERE status = 'pending'"
    )
    op.execute(
        "CREATE INDEX ix_webhook_deliveries_endpoint ON webhook_deliveries "
        "(endpoint_id, created_at DESC)"
    )
    op.execute(
        "CREATE INDEX ix_webhook_deliveries_user ON webhook_deliveries (user_id, created_at DESC)"
    )
    op.execute(
        """
        CREATE TABLE webhook_attempts (
            delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
            n integer NOT NULL,
            at timestamptz NOT NULL DEFAULT now(),
            status_code integer,
            latency_ms double precision NOT NULL,
            error text,
            PRIMARY KEY (delivery_id, n)
        )
        """
    )
    # Wake the dispatchers when deliveries commit, as the outbox wakes the relays.
    op.execute(
        """
        CREATE FUNCTION relai_webhooks_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('relai_webhooks', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER webhook_deliveries_notify AFTER INSERT ON webhook_deliveries
        FOR EACH STATEMENT EXECUTE FUNCTION relai_webhooks_notify()
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE webhook_attempts")
    op.execute("DROP TABLE webhook_deliveries")
    op.execute("DROP FUNCTION relai_webhooks_notify()")
    op.execute("ALTER TABLE requests DROP COLUMN webhook_url")
    op.execute("DROP TABLE webhook_secrets")
    op.execute("DROP TABLE webhook_endpoints")
