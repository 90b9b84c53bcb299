//! `queuectl migrate`: copies a SQLite queue (jobs, attempt history, config) into a
//! PostgreSQL one in a single transaction, so the copy is whole or absent.

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use super::postgres::{notify, pg_text};
use super::{PostgresStore, SqliteStore, StoreOptions};
use crate::error::{Error, Result};

/// What a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub jobs: u64,
    pub attempts: u64,
    pub config: u64,
}

const JOB_COLUMNS: &str = "seq, id, command, state, attempts, runs, max_retries, priority, run_at_ms, timeout_ms, \
     cwd, created_at_ms, updated_at_ms, started_at_ms, finished_at_ms, exit_code, last_error, worker_id, \
     lease_expires_ms, output_tail";
const JOB_TYPES: [Type; 20] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
];
const ATTEMPT_COLUMNS: &str =
    "job_seq, run, attempt, worker_id, started_at_ms, finished_at_ms, exit_code, error, outcome, output_tail";
const ATTEMPT_TYPES: [Type; 10] = [
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
];

/// One SQLite value as the PostgreSQL column type wants it.
enum Value {
    Int(Option<i64>),
    Int4(Option<i32>),
    Text(Option<String>),
}

impl Value {
    fn read(row: &rusqlite::Row<'_>, i: usize, ty: &Type) -> rusqlite::Result<Value> {
        Ok(if *ty == Type::INT8 {
            Value::Int(row.get(i)?)
        } else if *ty == Type::INT4 {
            Value::Int4(row.get(i)?)
        } else {
            let text: Option<String> = row.get(i)?;
            Value::Text(text.map(|t| pg_text(&t).into_owned()))
        })
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::Int(v) => v,
            Value::Int4(v) => v,
            Value::Text(v) => v,
        }
    }
}

/// Streams every row of a SQLite query into a PostgreSQL `COPY ... FROM STDIN`.
fn stream(
    src: &rusqlite::Connection,
    select: &str,
    tx: &mut postgres::Transaction<'_>,
    copy: &str,
    types: &[Type],
) -> Result<u64> {
    let writer = tx.copy_in(copy)?;
    let mut writer = BinaryCopyInWriter::new(writer, types);
    let mut st = src.prepare(select)?;
    let mut rows = st.query([])?;
    while let Some(row) = rows.next()? {
        let values =
            types.iter().enumerate().map(|(i, ty)| Value::read(row, i, ty)).collect::<rusqlite::Result<Vec<_>>>()?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(Value::as_sql).collect();
        writer.write(&refs)?;
    }
    Ok(writer.finish()?)
}

/// Copies the SQLite queue at `src` into the PostgreSQL queue at `dst`, adding to any
/// jobs already there. All or nothing: an id present in both fails the copy, naming it.
/// The SQLite file is left as it was.
pub fn sqlite_to_postgres(src: &std::path::Path, dst: &str, opts: &StoreOptions) -> Result<CopyReport> {
    if !src.exists() {
        return Err(Error::InvalidInput(format!("there is no queue at {}", src.display())));
    }
    let source = SqliteStore::open(src, opts)?;
    let mut target = PostgresStore::open(dst, opts)?;
    let channel = target.channel().to_string();
    let conn = source.connection();
    // A read transaction: the copy is one consistent snapshot even if someone enqueues.
    conn.execute_batch("BEGIN")?;
    let result = (|| -> Result<CopyReport> {
        let client = target.connect()?;
        let mut tx = client.transaction()?;
        tx.batch_execute(
            "CREATE TEMP TABLE qm_jobs (LIKE jobs) ON COMMIT DROP;
             CREATE TEMP TABLE qm_attempts (LIKE attempts) ON COMMIT DROP;",
        )?;
        let jobs = stream(
            conn,
            &format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY seq"),
            &mut tx,
            &format!("COPY qm_jobs ({JOB_COLUMNS}) FROM STDIN (FORMAT binary)"),
            &JOB_TYPES,
        )?;
        let attempts = stream(
            conn,
            &format!("SELECT {ATTEMPT_COLUMNS} FROM attempts"),
            &mut tx,
            &format!("COPY qm_attempts ({ATTEMPT_COLUMNS}) FROM STDIN (FORMAT binary)"),
            &ATTEMPT_TYPES,
        )?;
        let clash = tx.query_opt("SELECT t.id FROM qm_jobs t JOIN jobs j ON j.id = t.id LIMIT 1", &[])?;
        if let Some(row) = clash {
            return Err(Error::DuplicateId(row.get(0)));
        }
        let cols = JOB_COLUMNS.trim_start_matches("seq, ");
        // New sequence numbers, in the old order: FIFO among the copied jobs holds.
        tx.execute(&format!("INSERT INTO jobs ({cols}) SELECT {cols} FROM qm_jobs ORDER BY seq"), &[])?;
        tx.execute(
            "INSERT INTO attempts (job_seq, run, attempt, worker_id, started_at_ms, finished_at_ms, exit_code, error, outcome, output_tail)
             SELECT j.seq, a.run, a.attempt, a.worker_id, a.started_at_ms, a.finished_at_ms, a.exit_code, a.error, a.outcome, a.output_tail
             FROM qm_attempts a JOIN qm_jobs t ON t.seq = a.job_seq JOIN jobs j ON j.id = t.id",
            &[],
        )?;
        let mut config = 0;
        let mut st = conn.prepare("SELECT key, value, updated_at_ms FROM config")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
        for row in rows {
            let (key, value, at) = row?;
            tx.execute(
                "INSERT INTO config (key, value, updated_at_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
                &[&key, &value, &at],
            )?;
            config += 1;
        }
        notify(&mut tx, &channel)?;
        tx.commit()?;
        Ok(CopyReport { jobs, attempts, config })
    })();
    conn.execute_batch("ROLLBACK")?;
    result
}
