"""The statements of `PostgresJobs` (rules PJ1-PJ6 of `trio_sched.jobs.postgres`).

`JobsSql` holds the schema of PJ1 (table and indexes, created ``IF NOT EXISTS``) and
one statement per operation, every time read from the server's clock (PJ2), with the
table's names quoted as identifiers (P6). Built once per runtime; no I/O.
"""

from __future__ import annotations

from typing import Final, final

from trio_sched._postgres_common import (
    TableName,
    advisory_key,
    query,
)

__all__ = ["JOB_COLUMNS", "JobsSql"]

# The job columns, in the order `job_from_row` reads them.
JOB_COLUMNS: Final = (
    "id, name, queue, payload, headers, content_type, tenant_id, idempotency_key,"
    " run_at, created_at, fencing_token, attempt"
)


@final
class JobsSql:
    """The runtime's statements, with its table names quoted as identifiers (P6)."""

    def __init__(self, table: TableName) -> None:
        # Imported here, not at the top: the first psycopg import goes through
        # _postgres_common, which is loaded by now.
        from psycopg import sql

        parts = [table.name] if table.schema is None else [table.schema, table.name]
        ids: dict[str, sql.Composable] = {
            "jobs": table.identifier(),
            "due_idx": table.local_identifier("_due_idx"),
            "dead_idx": table.local_identifier("_dead_idx"),
            "done_idx": table.local_identifier("_done_idx"),
            "cancelled_idx": table.local_identifier("_cancelled_idx"),
            # The table's name as text for to_regclass (PJ8's upgrade): its parts as
            # literals, quoted as identifiers by the server so the case survives.
            "jobs_name": sql.SQL(" || '.' || ").join(
                sql.SQL("quote_ident({})").format(sql.Literal(part)) for part in parts
            ),
        }
        # The lock provider's key: one for every trio-sched schema creation (PJ1).
        self.advisory_key = advisory_key("trio_sched", "schema")
        self.create = [
            query(
                "CREATE TABLE IF NOT EXISTS {jobs} ("
                " id text PRIMARY KEY,"
                " queue text NOT NULL,"
                " name text NOT NULL,"
                " payload bytea NOT NULL,"
                " headers jsonb NOT NULL,"
                " content_type text NOT NULL,"
                " tenant_id text,"
                " idempotency_key text UNIQUE,"
                " run_at timestamptz,"
                " created_at timestamptz,"
                " fencing_token bigint,"
                " attempt integer NOT NULL,"
                " tries integer NOT NULL DEFAULT 0,"
                " state text NOT NULL DEFAULT 'ready'"
                " CHECK (state IN ('ready', 'leased', 'dead', 'done', 'cancelled')),"
                " lease_token text,"
                " leased_until timestamptz,"
                " available_at timestamptz NOT NULL,"
                " enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
                " last_error text,"
                " failed_at timestamptz,"
                " dead_attempt integer,"
                " finished_at timestamptz)",
                **ids,
            ),
            query(
                "CREATE INDEX IF NOT EXISTS {due_idx} ON {jobs} (queue, available_at)"
                " WHERE state IN ('ready', 'leased')",
                **ids,
            ),
            query(
                "CREATE INDEX IF NOT EXISTS {dead_idx} ON {jobs} (queue, failed_at)"
                " WHERE state = 'dead'",
                **ids,
            ),
            query(
                "CREATE INDEX IF NOT EXISTS {done_idx} ON {jobs} (finished_at)"
                " WHERE state = 'done'",
                **ids,
            ),
            # PJ8: the upgrade of an earlier jobs table, whose state check lacks
            # 'cancelled' (only then: the ALTER TABLE locks the table exclusively). Sent
            # without parameters, so its % signs are SQL's own.
            query(
                "DO $$DECLARE jobs regclass := to_regclass({jobs_name}); old name;"
                " BEGIN"
                " SELECT conname INTO old FROM pg_constraint WHERE conrelid = jobs"
                " AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%state%'"
                " AND pg_get_constraintdef(oid) NOT LIKE '%cancelled%' LIMIT 1;"
                " IF old IS NULL THEN RETURN; END IF;"
                " EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I"
                " CHECK (state IN (''ready'', ''leased'', ''dead'', ''done'', ''cancelled''))"
                " NOT VALID', jobs, old, old);"
                " END$$",
                **ids,
            ),
            query(
                "CREATE INDEX IF NOT EXISTS {cancelled_idx} ON {jobs} (finished_at)"
                " WHERE state = 'cancelled'",
                **ids,
            ),
        ]
        # PJ3: one statement; the NOTIFY is sent when the insert commits.
        self.enqueue = query(
            "WITH ins AS ("
            " INSERT INTO {jobs} (id, queue, name, payload, headers, content_type, tenant_id,"
            " idempotency_key, run_at, created_at, fencing_token, attempt, available_at)"
            " VALUES (%(id)s, %(queue)s, %(name)s, %(payload)s, %(headers)s::jsonb,"
            " %(content_type)s, %(tenant_id)s, %(key)s, %(run_at)s, %(created_at)s,"
            " %(fencing)s, %(attempt)s, GREATEST(clock_timestamp(),"
            " COALESCE(%(run_at)s::timestamptz, '-infinity')))"
            " ON CONFLICT DO NOTHING"
            " RETURNING queue, available_at"
            ")"
            " SELECT available_at > clock_timestamp(), pg_notify(%(channel)s, queue)::text"
            " FROM ins",
            **ids,
        )
        self.holder = query(
            "SELECT id FROM {jobs} WHERE id = %(id)s OR idempotency_key = %(key)s LIMIT 1",
            **ids,
        )
        # PJ3, enqueue_many: one array per column, inserted in array order (the caller
        # sorts them); one NOTIFY per queue, sent when the transaction commits. The
        # arrays travel in binary (``%()b``): psycopg's text form quotes and escapes
        # every element, ten times slower for 1,000 JSON headers.
        self.enqueue_many = query(
            "WITH ins AS ("
            " INSERT INTO {jobs} (id, queue, name, payload, headers, content_type, tenant_id,"
            " idempotency_key, run_at, created_at, fencing_token, attempt, available_at)"
            " SELECT s.id, s.queue, s.name, s.payload, s.headers::jsonb, s.content_type,"
            " s.tenant_id, s.key, s.run_at, s.created_at, s.fencing, s.attempt,"
            " GREATEST(clock_timestamp(), COALESCE(s.run_at, '-infinity'))"
            " FROM unnest(%(ids)b::text[], %(queues)b::text[], %(names)b::text[],"
            " %(payloads)b::bytea[], %(headers)b::text[], %(content_types)b::text[],"
            " %(tenants)b::text[], %(keys)b::text[], %(run_ats)b::timestamptz[],"
            " %(created_ats)b::timestamptz[], %(fencings)b::int8[], %(attempts)b::int4[])"
            " WITH ORDINALITY AS s(id, queue, name, payload, headers, content_type,"
            " tenant_id, key, run_at, created_at, fencing, attempt, ord)"
            " ORDER BY s.ord"
            " ON CONFLICT DO NOTHING"
            " RETURNING id, queue, available_at"
            "), woken AS ("
            " SELECT count(pg_notify(%(channel)s, q.queue)) FROM (SELECT DISTINCT queue FROM ins)"
            " AS q"
            ")"
            " SELECT ins.id, ins.available_at > clock_timestamp() FROM ins, woken",
            **ids,
        )
        # The holder of each refused job of a batch, by id first (as `holder`); a NULL
        # id or key is not looked up.
        self.holders = query(
            "SELECT h.ord, COALESCE("
            " (SELECT j.id FROM {jobs} AS j WHERE j.id = h.id),"
            " (SELECT j.id FROM {jobs} AS j WHERE j.idempotency_key = h.key))"
            " FROM unnest(%(ids)s::text[], %(keys)s::text[]) WITH ORDINALITY AS h(id, key, ord)",
            **ids,
        )
        # PJ4: one statement; rows locked by another claim are skipped, never waited for.
        self.claim = query(
            "WITH now AS (SELECT clock_timestamp() AS t),"
            " picked AS ("
            " SELECT j.id, j.state, j.available_at AS due, j.attempt + j.tries > %(max)s AS spent"
            " FROM {jobs} AS j, now"
            " WHERE j.queue = ANY(%(queues)s::text[]) AND j.state IN ('ready', 'leased')"
            " AND j.available_at <= now.t"
            " ORDER BY j.available_at LIMIT %(limit)s FOR UPDATE OF j SKIP LOCKED"
            "), dead AS ("
            " UPDATE {jobs} AS j SET state = 'dead', lease_token = NULL, leased_until = NULL,"
            " failed_at = now.t, dead_attempt = j.attempt + j.tries - 1,"
            " last_error = 'lease expired on attempt ' || (j.attempt + j.tries - 1)"
            " || ' (worker lost or stuck); no attempts left'"
            " FROM picked AS p, now WHERE j.id = p.id AND p.state = 'leased' AND p.spent"
            " RETURNING j.id"
            "), taken AS ("
            " UPDATE {jobs} AS j SET state = 'leased', tries = j.tries + 1,"
            " lease_token = %(token)s,"
            " leased_until = now.t + %(vt)s * interval '1 second',"
            " available_at = now.t + %(vt)s * interval '1 second'"
            " FROM picked AS p, now"
            " WHERE j.id = p.id AND NOT (p.state = 'leased' AND p.spent)"
            " RETURNING j.id, j.name, j.queue, j.payload, j.headers, j.content_type,"
            " j.tenant_id, j.idempotency_key, j.run_at, j.created_at, j.fencing_token,"
            " j.attempt, j.tries, p.due"
            ")"
            " (SELECT id, name, queue, payload, headers, content_type, tenant_id,"
            " idempotency_key, run_at, created_at, fencing_token, attempt, tries"
            " FROM taken ORDER BY due, id)"
            # A count of expired leases dead-lettered, as one marker row (name NULL).
            " UNION ALL (SELECT count(*)::text, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
            " NULL, NULL, NULL, NULL, NULL FROM dead HAVING count(*) > 0)",
            **ids,
        )
        # PJ5: seconds until the next row of these queues becomes claimable.
        self.next_due = query(
            "SELECT extract(epoch FROM min(available_at) - clock_timestamp())::float8"
            " FROM {jobs}"
            " WHERE queue = ANY(%(queues)s::text[]) AND state IN ('ready', 'leased')",
            **ids,
        )
        # The undo of a claim (PJ4): rows still leased by the abandoned call's token.
        self.give_back = query(
            "WITH back AS ("
            " UPDATE {jobs} SET state = 'ready', tries = tries - 1, lease_token = NULL,"
            " leased_until = NULL, available_at = clock_timestamp()"
            " WHERE lease_token = %(token)s AND state = 'leased'"
            " RETURNING queue"
            ")"
            " SELECT pg_notify(%(channel)s, queue)::text FROM back",
            **ids,
        )
        # PJ6: a job with an idempotency key stays as a `done` row for dedupe (PJ3).
        self.complete = query(
            "WITH gone AS ("
            " DELETE FROM {jobs} WHERE id = %(id)s AND lease_token = %(token)s"
            " AND state = 'leased' AND idempotency_key IS NULL RETURNING 1"
            "), kept AS ("
            " UPDATE {jobs} SET state = 'done', payload = ''::bytea, lease_token = NULL,"
            " leased_until = NULL, finished_at = clock_timestamp()"
            " WHERE id = %(id)s AND lease_token = %(token)s AND state = 'leased'"
            " AND idempotency_key IS NOT NULL RETURNING 1"
            ")"
            " SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM kept)",
            **ids,
        )
        self.retry = query(
            "WITH u AS ("
            " UPDATE {jobs} SET state = 'ready', lease_token = NULL, leased_until = NULL,"
            " available_at = clock_timestamp() + %(delay)s * interval '1 second',"
            " last_error = %(error)s"
            " WHERE id = %(id)s AND lease_token = %(token)s AND state = 'leased'"
            " RETURNING queue"
            ")"
            " SELECT pg_notify(%(channel)s, queue)::text FROM u",
            **ids,
        )
        self.bury = query(
            "UPDATE {jobs} SET state = 'dead', lease_token = NULL, leased_until = NULL,"
            " last_error = %(error)s, failed_at = clock_timestamp(), dead_attempt = %(attempt)s"
            " WHERE id = %(id)s AND lease_token = %(token)s AND state = 'leased'",
            **ids,
        )
        self.extend = query(
            "UPDATE {jobs} SET"
            " leased_until = clock_timestamp() + %(vt)s * interval '1 second',"
            " available_at = clock_timestamp() + %(vt)s * interval '1 second'"
            " WHERE id = %(id)s AND lease_token = %(token)s AND state = 'leased'",
            **ids,
        )
        self.release = query(
            "WITH u AS ("
            " UPDATE {jobs} SET state = 'ready', tries = tries - 1, lease_token = NULL,"
            " leased_until = NULL, available_at = clock_timestamp()"
            " WHERE id = %(id)s AND lease_token = %(token)s AND state = 'leased'"
            " RETURNING queue"
            ")"
            " SELECT pg_notify(%(channel)s, queue)::text FROM u",
            **ids,
        )
        self.dead_letters = query(
            f"SELECT {JOB_COLUMNS}, dead_attempt, last_error, failed_at FROM {{jobs}}"
            " WHERE queue = %(queue)s AND state = 'dead'"
            " ORDER BY failed_at, id LIMIT %(limit)s",
            **ids,
        )
        self.redrive = query(
            "WITH u AS ("
            " UPDATE {jobs} SET state = 'ready', tries = 0, available_at = clock_timestamp(),"
            " last_error = NULL, failed_at = NULL, dead_attempt = NULL"
            " WHERE queue = %(queue)s AND state = 'dead'"
            " AND (%(all)s OR id = ANY(%(ids)s::text[]))"
            " RETURNING queue"
            ")"
            " SELECT pg_notify(%(channel)s, queue)::text FROM u",
            **ids,
        )
        self.get = query(
            f"SELECT {JOB_COLUMNS} FROM {{jobs}}"
            " WHERE id = %(id)s AND state IN ('ready', 'leased')",
            **ids,
        )
        self.queue_stats = query(
            "SELECT"
            " count(*) FILTER (WHERE state = 'ready' AND available_at <= clock_timestamp()),"
            " count(*) FILTER (WHERE state = 'ready' AND available_at > clock_timestamp()),"
            " count(*) FILTER (WHERE state = 'leased'),"
            " count(*) FILTER (WHERE state = 'dead'),"
            " count(*) FILTER (WHERE state = 'done')"
            " FROM {jobs} WHERE queue = %(queue)s",
            **ids,
        )
        # PJ3, PJ8: walks the done and cancelled indexes (up to `limit` rows of each),
        # skips rows another session has locked.
        self.cleanup = query(
            "WITH done AS ("
            " SELECT id FROM {jobs} WHERE state = 'done'"
            " AND finished_at < clock_timestamp() - %(keep)s * interval '1 second'"
            " ORDER BY finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
            "), cancelled AS ("
            " SELECT id FROM {jobs} WHERE state = 'cancelled'"
            " AND finished_at < clock_timestamp() - %(keep)s * interval '1 second'"
            " ORDER BY finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
            ")"
            " DELETE FROM {jobs} AS j USING ("
            " SELECT id FROM done UNION ALL SELECT id FROM cancelled"
            ") AS old WHERE j.id = old.id AND j.state IN ('done', 'cancelled')",
            **ids,
        )
        # PJ8: the state of the row holding a key, and whether its lease still runs.
        self.job_state = query(
            "SELECT state, leased_until > clock_timestamp() FROM {jobs}"
            " WHERE idempotency_key = %(key)s",
            **ids,
        )
        # PJ8: a ready or leased row (its lease, if any, revoked by the cleared token).
        self.cancel = query(
            "UPDATE {jobs} SET state = 'cancelled', payload = ''::bytea, lease_token = NULL,"
            " leased_until = NULL, finished_at = clock_timestamp()"
            " WHERE idempotency_key = %(key)s AND state IN ('ready', 'leased')",
            **ids,
        )
