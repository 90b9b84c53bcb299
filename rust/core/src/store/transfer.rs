//! Moving whole queues: `queuectl migrate` both ways (SQLite to PostgreSQL, PostgreSQL to
//! SQLite) and `queuectl backup` (a snapshot of either, written as a new SQLite queue
//! file). Every copy is one transaction on each side, so it is whole or absent, and reads
//! one consistent snapshot of the source while its workers go on. The statements are in
//! `sql::copy` (the streams, the merge) and the modules of the tables copied.

use std::path::Path;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::IsolationLevel;

use super::postgres::{notify, pg_text, pg_type};
use super::row::{ColType, ScheduleCopy};
use super::sql::copy::{self, Streamed, TABLES};
use super::sql::{claim, config, dependencies, queues, schedules, workers};
use super::{is_postgres, PostgresStore, SqliteStore, StoreOptions};
use crate::error::{Error, Result};

/// What a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub jobs: u64,
    pub attempts: u64,
    pub config: u64,
    /// Jobs that were processing when a backup's snapshot was taken: pending in the copy
    /// (see [`backup`]).
    pub requeued: u64,
}

/// One SQLite value as the PostgreSQL column type wants it.
enum Value {
    Int(Option<i64>),
    Int4(Option<i32>),
    Text(Option<String>),
}

impl Value {
    fn read(row: &rusqlite::Row<'_>, i: usize, ty: ColType) -> rusqlite::Result<Value> {
        Ok(match ty {
            ColType::Int8 => Value::Int(row.get(i)?),
            ColType::Int4 => Value::Int4(row.get(i)?),
            ColType::Text => {
                let text: Option<String> = row.get(i)?;
                Value::Text(text.map(|t| pg_text(&t).into_owned()))
            }
        })
    }

    fn read_pg(row: &postgres::Row, i: usize, ty: ColType) -> Result<Value> {
        Ok(match ty {
            ColType::Int8 => Value::Int(row.try_get(i)?),
            ColType::Int4 => Value::Int4(row.try_get(i)?),
            ColType::Text => Value::Text(row.try_get(i)?),
        })
    }

    fn into_sqlite(self) -> rusqlite::types::Value {
        use rusqlite::types::Value as V;
        match self {
            Value::Int(Some(v)) => V::Integer(v),
            Value::Int4(Some(v)) => V::Integer(v.into()),
            Value::Text(Some(v)) => V::Text(v),
            Value::Int(None) | Value::Int4(None) | Value::Text(None) => V::Null,
        }
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::Int(v) => v,
            Value::Int4(v) => v,
            Value::Text(v) => v,
        }
    }
}

/// Streams every row of table `t` of a SQLite queue into its PostgreSQL temporary table
/// (`COPY ... FROM STDIN`).
fn stream(src: &rusqlite::Connection, tx: &mut postgres::Transaction<'_>, t: &Streamed) -> Result<u64> {
    let types = t.types;
    let writer = tx.copy_in(t.copy_in)?;
    let pg_types: Vec<Type> = types.iter().copied().map(pg_type).collect();
    let mut writer = BinaryCopyInWriter::new(writer, &pg_types);
    let mut st = src.prepare(t.select)?;
    let mut rows = st.query([])?;
    while let Some(row) = rows.next()? {
        let values =
            types.iter().enumerate().map(|(i, ty)| Value::read(row, i, *ty)).collect::<rusqlite::Result<Vec<_>>>()?;
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
        tx.batch_execute(copy::postgres::TEMP_TABLES)?;
        let mut copied = [0; 3];
        for (n, t) in copied.iter_mut().zip(&TABLES) {
            *n = stream(conn, &mut tx, t)?;
        }
        let [jobs, attempts, _edges] = copied;
        let clash = tx.query_opt(copy::postgres::CLASH, &[])?;
        if let Some(row) = clash {
            return Err(Error::DuplicateId(row.get(0)));
        }
        for sql in copy::postgres::MERGE {
            tx.execute(sql, &[])?;
        }
        let mut config = 0;
        let mut st = conn.prepare(config::ROWS.sqlite)?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
        for row in rows {
            let (key, value, at) = row?;
            tx.execute(config::SET.postgres, &[&key, &value, &at])?;
            config += 1;
        }
        let mut st = conn.prepare(queues::ROWS.sqlite)?;
        let rows = st.query_map([], |r| {
            let n: [i64; 6] = [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?];
            Ok((r.get::<_, String>(0)?, n))
        })?;
        for row in rows {
            let (name, [paused, limit, at, rate_n, rate_period, key_limit]) = row?;
            tx.execute(queues::COPY.postgres, &[&name, &paused, &limit, &at, &rate_n, &rate_period, &key_limit])?;
        }
        let mut st = conn.prepare(schedules::ROWS.sqlite)?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
            ))
        })?;
        for row in rows {
            let s: ScheduleCopy = row?;
            tx.execute(
                schedules::COPY.postgres,
                &[&s.0, &s.1, &s.2, &s.3, &s.4, &s.5, &s.6, &s.7, &s.8, &s.9, &s.10, &s.11, &s.12],
            )?;
        }
        notify(&mut tx, &channel)?;
        tx.commit()?;
        Ok(CopyReport { jobs, attempts, config, requeued: 0 })
    })();
    conn.execute_batch("ROLLBACK")?;
    result
}

/// Streams every row of table `t` of a PostgreSQL queue into its SQLite temporary table
/// (an `INSERT` of as many values).
fn stream_back(src: &mut postgres::Transaction<'_>, dst: &rusqlite::Connection, t: &Streamed) -> Result<u64> {
    let types = t.types;
    let none: [&(dyn ToSql + Sync); 0] = [];
    let mut rows = src.query_raw(t.select, none)?;
    let mut st = dst.prepare(t.insert)?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        let values = types
            .iter()
            .enumerate()
            .map(|(i, ty)| Value::read_pg(&row, i, *ty).map(Value::into_sqlite))
            .collect::<Result<Vec<_>>>()?;
        st.execute(rusqlite::params_from_iter(values))?;
        n += 1;
    }
    Ok(n)
}

/// Copies the PostgreSQL queue at `src` into the SQLite queue at `dst` (created when
/// absent), adding to any jobs already there; an id present in both fails the copy, naming
/// it. One `REPEATABLE READ` snapshot of the source, one transaction on the file; the
/// PostgreSQL queue is left as it was. With `snapshot`, the copy is settled as a backup
/// (see [`backup`]).
fn postgres_into_sqlite(src: &str, dst: &Path, opts: &StoreOptions, snapshot: bool) -> Result<CopyReport> {
    let mut source = PostgresStore::open(src, opts)?;
    let target = SqliteStore::open(dst, opts)?;
    let conn = target.connection();
    let client = source.connect()?;
    let mut rtx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result =
        (|| -> Result<CopyReport> {
            conn.execute_batch(copy::sqlite::TEMP_TABLES)?;
            let mut copied = [0; 3];
            for (n, t) in copied.iter_mut().zip(&TABLES) {
                *n = stream_back(&mut rtx, conn, t)?;
            }
            let [jobs, attempts, _edges] = copied;
            let clash: Option<String> = conn
                .query_row(copy::sqlite::CLASH, [], |r| r.get(0))
                .map(Some)
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
            if let Some(id) = clash {
                return Err(Error::DuplicateId(id));
            }
            for sql in copy::sqlite::MERGE {
                conn.execute(sql, [])?;
            }
            let mut config = 0;
            {
                let mut rows = rtx.query_raw(config::ROWS.postgres, [] as [&(dyn ToSql + Sync); 0])?;
                let mut st = conn.prepare(config::SET.sqlite)?;
                while let Some(row) = rows.next()? {
                    let (key, value, at): (String, String, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                    st.execute(rusqlite::params![key, value, at])?;
                    config += 1;
                }
            }
            {
                let mut rows = rtx.query_raw(queues::ROWS.postgres, [] as [&(dyn ToSql + Sync); 0])?;
                let mut st = conn.prepare(queues::COPY.sqlite)?;
                while let Some(row) = rows.next()? {
                    let name: String = row.try_get(0)?;
                    let n: [i64; 6] = [
                        row.try_get(1)?,
                        row.try_get(2)?,
                        row.try_get(3)?,
                        row.try_get(4)?,
                        row.try_get(5)?,
                        row.try_get(6)?,
                    ];
                    st.execute(rusqlite::params![name, n[0], n[1], n[2], n[3], n[4], n[5]])?;
                }
            }
            {
                let mut rows = rtx.query_raw(schedules::ROWS.postgres, [] as [&(dyn ToSql + Sync); 0])?;
                let mut st = conn.prepare(schedules::COPY.sqlite)?;
                while let Some(r) = rows.next()? {
                    let s: ScheduleCopy = (
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                        r.try_get(6)?,
                        r.try_get(7)?,
                        r.try_get(8)?,
                        r.try_get(9)?,
                        r.try_get(10)?,
                        r.try_get(11)?,
                        r.try_get(12)?,
                    );
                    st.execute(rusqlite::params![s.0, s.1, s.2, s.3, s.4, s.5, s.6, s.7, s.8, s.9, s.10, s.11, s.12])?;
                }
            }
            conn.execute_batch(copy::sqlite::DROP_TEMP_TABLES)?;
            let requeued = if snapshot { settle_snapshot(conn)? } else { 0 };
            conn.execute_batch("COMMIT")?;
            Ok(CopyReport { jobs, attempts, config, requeued })
        })();
    if result.is_err() {
        conn.execute_batch("ROLLBACK")?;
    }
    // Read only: nothing to commit.
    rtx.rollback()?;
    result
}

/// Copies the PostgreSQL queue at `src` into the SQLite file `dst` (`migrate` from
/// PostgreSQL): jobs in every state with their history, and config, all or nothing.
pub fn postgres_to_sqlite(src: &str, dst: &Path, opts: &StoreOptions) -> Result<CopyReport> {
    postgres_into_sqlite(src, dst, opts, false)
}

/// Makes a copy stand alone as a queue nobody works on yet: jobs that were processing go
/// back to pending with that attempt uncounted (in the copy they have no worker; they run
/// again once workers use it), and the workers it lists are marked exited. Without this,
/// a restored copy would count those jobs as failed attempts of lost workers.
fn settle_snapshot(conn: &rusqlite::Connection) -> Result<u64> {
    let now = crate::clock::now_ms();
    let requeued = conn.execute(claim::sqlite::REQUEUE_ALL, [now])?;
    // A job whose cancel was asked for ended cancelled just now: so do its dependents.
    conn.execute(dependencies::sqlite::CASCADE_ALL, [now])?;
    conn.execute(workers::sqlite::EXIT_ALL, [now])?;
    Ok(requeued as u64)
}

/// `queuectl backup`: a consistent snapshot of the queue at `location` (SQLite or
/// PostgreSQL) written as a new SQLite queue file `dst`, owner-only, taken while workers
/// run. Never overwrites: `dst` must not exist. Jobs processing at the snapshot are
/// pending in the copy (see [`settle_snapshot`]). On failure nothing is left at `dst`.
pub fn backup(location: &str, dst: &Path, opts: &StoreOptions) -> Result<CopyReport> {
    let Some(dst_text) = dst.to_str() else {
        return Err(Error::InvalidInput(format!("the backup path {} is not valid UTF-8", dst.display())));
    };
    // O_EXCL: the check and the creation are one step, so nothing existing is overwritten.
    match crate::private_file::options().write(true).create_new(true).open(dst) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::InvalidInput(format!(
                "{} already exists; a backup never overwrites a file",
                dst.display()
            )))
        }
        Err(e) => return Err(Error::Io(format!("cannot create the backup {}: {e}", dst.display()))),
    }
    let result = if is_postgres(location) {
        postgres_into_sqlite(location, dst, opts, true)
    } else {
        backup_sqlite(Path::new(location), dst_text, opts)
    };
    if result.is_err() {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{dst_text}{suffix}"));
        }
        return result;
    }
    // The copy's last commit was synced; this also syncs what VACUUM INTO wrote.
    std::fs::OpenOptions::new().write(true).open(dst).and_then(|f| f.sync_all())?;
    result
}

/// A SQLite queue copied with `VACUUM INTO`: one read transaction, which in WAL mode
/// blocks no writer, writes a compact copy page by page into the empty file `dst`.
fn backup_sqlite(src: &Path, dst: &str, opts: &StoreOptions) -> Result<CopyReport> {
    if !src.exists() {
        return Err(Error::InvalidInput(format!("there is no queue at {}", src.display())));
    }
    {
        let source = SqliteStore::open(src, opts)?;
        source.connection().execute(copy::sqlite::VACUUM_INTO, [dst])?;
    }
    let copy = SqliteStore::open(Path::new(dst), opts)?;
    let conn = copy.connection();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> Result<CopyReport> {
        let requeued = settle_snapshot(conn)?;
        let count = |sql: &str| -> Result<u64> { Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64) };
        let report = CopyReport {
            jobs: count(copy::sqlite::COUNT_JOBS)?,
            attempts: count(copy::sqlite::COUNT_ATTEMPTS)?,
            config: count(copy::sqlite::COUNT_CONFIG)?,
            requeued,
        };
        conn.execute_batch("COMMIT")?;
        Ok(report)
    })();
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}
