//! What a copy of a whole queue runs (`store::transfer`: `migrate` both ways, `backup`):
//! the tables streamed row for row into temporary tables (`qm_*`), the merge from those
//! into the queue's tables, the check that no id is in both. Config, queues and schedules
//! are copied with the statements of their own modules (`config::ROWS`, `config::SET`...).
//!
//! The column lists come from `store::row`, joined at compile time: the merge's lists
//! without the first column (`seq`, `job_seq`, which the target numbers anew), the history
//! columns with the alias `a.` in front, and SQLite's `?1, ... ?N` for N columns, are made
//! by the `const fn`s below.

use crate::store::row::{attempt_col, job_col, ColType};

/// The text of [`numbered_bytes`], at compile time.
macro_rules! numbered {
    ($n:expr) => {{
        const BYTES: [u8; $crate::store::sql::copy::numbered_len($n)] = $crate::store::sql::copy::numbered_bytes($n);
        const TEXT: &str = $crate::store::sql::utf8(&BYTES);
        TEXT
    }};
}

/// The text of [`prefixed_bytes`], at compile time.
macro_rules! prefixed {
    ($prefix:expr, $list:expr) => {{
        const BYTES: [u8; $crate::store::sql::copy::prefixed_len($prefix, $list)] =
            $crate::store::sql::copy::prefixed_bytes($prefix, $list);
        const TEXT: &str = $crate::store::sql::utf8(&BYTES);
        TEXT
    }};
}

/// A table copied row for row: what reads it from the source (either dialect, no
/// parameter), what writes a row into its temporary table (PostgreSQL's binary `COPY`,
/// SQLite's `INSERT`), and its columns' types.
pub(crate) struct Streamed {
    pub select: &'static str,
    pub copy_in: &'static str,
    pub insert: &'static str,
    pub types: &'static [ColType],
}

/// The columns of job_deps.
const EDGE_COLUMNS: &str = "parent_seq, child_seq";

/// The tables a copy streams into temporary tables first: jobs (in enqueue order), their
/// history, the edges between them.
pub(crate) const TABLES: [Streamed; 3] = [
    Streamed {
        select: text!("SELECT ", job_col::LIST, " FROM jobs ORDER BY seq"),
        copy_in: text!("COPY qm_jobs (", job_col::LIST, ") FROM STDIN (FORMAT binary)"),
        insert: text!("INSERT INTO temp.qm_jobs (", job_col::LIST, ") VALUES (", numbered!(job_col::COUNT), ")"),
        types: job_col::TYPES,
    },
    Streamed {
        select: text!("SELECT ", attempt_col::LIST, " FROM attempts"),
        copy_in: text!("COPY qm_attempts (", attempt_col::LIST, ") FROM STDIN (FORMAT binary)"),
        insert: text!(
            "INSERT INTO temp.qm_attempts (",
            attempt_col::LIST,
            ") VALUES (",
            numbered!(attempt_col::COUNT),
            ")"
        ),
        types: attempt_col::TYPES,
    },
    Streamed {
        select: text!("SELECT ", EDGE_COLUMNS, " FROM job_deps"),
        copy_in: text!("COPY qm_job_deps (", EDGE_COLUMNS, ") FROM STDIN (FORMAT binary)"),
        insert: text!("INSERT INTO temp.qm_job_deps (", EDGE_COLUMNS, ") VALUES (?1, ?2)"),
        types: &[ColType::Int8, ColType::Int8],
    },
];

/// The columns of jobs a merge writes: all but `seq`.
const JOB_COLUMNS: &str = after_first(job_col::LIST);
/// The columns of attempts a merge writes: all but `job_seq`.
const HISTORY_COLUMNS: &str = after_first(attempt_col::LIST);
/// [`HISTORY_COLUMNS`] of the alias `a`.
const HISTORY_OF_A: &str = prefixed!("a.", HISTORY_COLUMNS);

/// SQLite's statements of a copy into a SQLite file (the source is PostgreSQL, or the file
/// `VACUUM INTO` wrote).
pub(crate) mod sqlite {
    use super::{HISTORY_COLUMNS, HISTORY_OF_A, JOB_COLUMNS};

    /// The temporary tables, shaped as the queue's.
    pub(crate) const TEMP_TABLES: &str = "CREATE TEMP TABLE qm_jobs AS SELECT * FROM main.jobs WHERE 0;
             CREATE INDEX temp.qm_jobs_seq ON qm_jobs (seq);
             CREATE TEMP TABLE qm_attempts AS SELECT * FROM main.attempts WHERE 0;
             CREATE TEMP TABLE qm_job_deps AS SELECT * FROM main.job_deps WHERE 0;";

    /// A job id in both the copy and the queue, if any.
    pub(crate) const CLASH: &str = "SELECT t.id FROM temp.qm_jobs t JOIN main.jobs j ON j.id = t.id LIMIT 1";

    /// The streamed rows moved into the queue's tables: jobs get new sequence numbers in
    /// the old order (FIFO among the copied jobs holds), and their history and edges
    /// follow them by id.
    pub(crate) const MERGE: [&str; 3] = [
        text!("INSERT INTO main.jobs (", JOB_COLUMNS, ") SELECT ", JOB_COLUMNS, " FROM temp.qm_jobs ORDER BY seq"),
        text!(
            "INSERT INTO main.attempts (job_seq, ",
            HISTORY_COLUMNS,
            ") SELECT j.seq, ",
            HISTORY_OF_A,
            "
             FROM temp.qm_attempts a JOIN temp.qm_jobs t ON t.seq = a.job_seq JOIN main.jobs j ON j.id = t.id"
        ),
        "INSERT INTO main.job_deps (parent_seq, child_seq) SELECT pj.seq, cj.seq
             FROM temp.qm_job_deps d
             JOIN temp.qm_jobs pt ON pt.seq = d.parent_seq JOIN main.jobs pj ON pj.id = pt.id
             JOIN temp.qm_jobs ct ON ct.seq = d.child_seq JOIN main.jobs cj ON cj.id = ct.id",
    ];

    /// The temporary tables, dropped once merged.
    pub(crate) const DROP_TEMP_TABLES: &str =
        "DROP TABLE temp.qm_jobs; DROP TABLE temp.qm_attempts; DROP TABLE temp.qm_job_deps;";

    /// A compact copy of the whole file, written page by page into the empty file ?1.
    pub(crate) const VACUUM_INTO: &str = "VACUUM INTO ?1";

    /// What a backup reports: its jobs, their history, its config.
    pub(crate) const COUNT_JOBS: &str = "SELECT count(*) FROM jobs";
    pub(crate) const COUNT_ATTEMPTS: &str = "SELECT count(*) FROM attempts";
    pub(crate) const COUNT_CONFIG: &str = "SELECT count(*) FROM config";
}

/// PostgreSQL's statements of a copy into a PostgreSQL queue.
pub(crate) mod postgres {
    use super::{HISTORY_COLUMNS, HISTORY_OF_A, JOB_COLUMNS};

    /// The temporary tables, shaped as the queue's, gone with the transaction.
    pub(crate) const TEMP_TABLES: &str = "CREATE TEMP TABLE qm_jobs (LIKE jobs) ON COMMIT DROP;
             CREATE TEMP TABLE qm_attempts (LIKE attempts) ON COMMIT DROP;
             CREATE TEMP TABLE qm_job_deps (LIKE job_deps) ON COMMIT DROP;";

    /// A job id in both the copy and the queue, if any.
    pub(crate) const CLASH: &str = "SELECT t.id FROM qm_jobs t JOIN jobs j ON j.id = t.id LIMIT 1";

    /// The streamed rows moved into the queue's tables, as SQLite's
    /// [`MERGE`](super::sqlite::MERGE) moves them.
    pub(crate) const MERGE: [&str; 3] = [
        text!("INSERT INTO jobs (", JOB_COLUMNS, ") SELECT ", JOB_COLUMNS, " FROM qm_jobs ORDER BY seq"),
        text!(
            "INSERT INTO attempts (job_seq, ",
            HISTORY_COLUMNS,
            ") SELECT j.seq, ",
            HISTORY_OF_A,
            "
             FROM qm_attempts a JOIN qm_jobs t ON t.seq = a.job_seq JOIN jobs j ON j.id = t.id"
        ),
        "INSERT INTO job_deps (parent_seq, child_seq) SELECT pj.seq, cj.seq
             FROM qm_job_deps d
             JOIN qm_jobs pt ON pt.seq = d.parent_seq JOIN jobs pj ON pj.id = pt.id
             JOIN qm_jobs ct ON ct.seq = d.child_seq JOIN jobs cj ON cj.id = ct.id",
    ];
}

/// `list` without its first column (a list of `name, name, ...`).
const fn after_first(list: &str) -> &str {
    let bytes = list.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() && !(bytes[i] == b',' && bytes[i + 1] == b' ') {
        i += 1;
    }
    assert!(i + 1 < bytes.len(), "a list of one column");
    super::utf8(bytes.split_at(i + 2).1)
}

/// The length of `list` with `prefix` before each of its columns.
const fn prefixed_len(prefix: &str, list: &str) -> usize {
    let bytes = list.as_bytes();
    let mut columns = 1;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b',' {
            columns += 1;
        }
        i += 1;
    }
    list.len() + prefix.len() * columns
}

/// `list` with `prefix` before each of its columns; `N` is [`prefixed_len`].
const fn prefixed_bytes<const N: usize>(prefix: &str, list: &str) -> [u8; N] {
    let (prefix, list) = (prefix.as_bytes(), list.as_bytes());
    let mut out = [0u8; N];
    let mut at = 0;
    let mut i = 0;
    while i <= list.len() {
        if i == 0 || (list[i - 1] == b' ' && i >= 2 && list[i - 2] == b',') {
            let mut k = 0;
            while k < prefix.len() {
                out[at] = prefix[k];
                at += 1;
                k += 1;
            }
        }
        if i < list.len() {
            out[at] = list[i];
            at += 1;
        }
        i += 1;
    }
    assert!(at == N, "the prefixed list has another length");
    out
}

/// The number of digits of `n`.
const fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// The length of `?1, ?2, ... ?n`.
const fn numbered_len(n: usize) -> usize {
    let mut len = 0;
    let mut i = 1;
    while i <= n {
        len += 1 + digits(i) + if i > 1 { 2 } else { 0 };
        i += 1;
    }
    len
}

/// `?1, ?2, ... ?n`; `N` is [`numbered_len`].
const fn numbered_bytes<const N: usize>(n: usize) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let mut i = 1;
    while i <= n {
        if i > 1 {
            out[at] = b',';
            out[at + 1] = b' ';
            at += 2;
        }
        out[at] = b'?';
        at += 1;
        let d = digits(i);
        let mut k = d;
        let mut v = i;
        while k > 0 {
            out[at + k - 1] = b'0' + (v % 10) as u8;
            v /= 10;
            k -= 1;
        }
        at += d;
        i += 1;
    }
    assert!(at == N, "the parameter list has another length");
    out
}

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    let mut sqlite = vec![
        sqlite::TEMP_TABLES,
        sqlite::CLASH,
        sqlite::DROP_TEMP_TABLES,
        sqlite::VACUUM_INTO,
        sqlite::COUNT_JOBS,
        sqlite::COUNT_ATTEMPTS,
        sqlite::COUNT_CONFIG,
    ];
    sqlite.extend(sqlite::MERGE);
    let mut postgres = vec![postgres::TEMP_TABLES, postgres::CLASH];
    postgres.extend(postgres::MERGE);
    for t in &TABLES {
        sqlite.extend([t.select, t.insert]);
        postgres.extend([t.select, t.copy_in]);
    }
    super::Texts { shared: Vec::new(), sqlite, postgres }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lists_made_at_compile_time() {
        assert_eq!(JOB_COLUMNS, job_col::LIST.trim_start_matches("seq, "));
        assert_eq!(HISTORY_COLUMNS, attempt_col::LIST.trim_start_matches("job_seq, "));
        let with_a: Vec<String> = HISTORY_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect();
        assert_eq!(HISTORY_OF_A, with_a.join(", "));
        let params: Vec<String> = (1..=job_col::COUNT).map(|i| format!("?{i}")).collect();
        assert!(TABLES[0].insert.ends_with(&format!("VALUES ({})", params.join(", "))));
        assert_eq!(numbered!(12), "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12");
    }

    #[test]
    fn the_dialects_merge_alike() {
        for (lite, pg) in sqlite::MERGE.iter().zip(postgres::MERGE) {
            assert_eq!(lite.replace("temp.", "").replace("main.", ""), pg);
        }
    }
}
