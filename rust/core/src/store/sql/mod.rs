//! Every statement the stores run on queuectl's tables, written whole, grouped by table:
//! [`jobs`], [`claim`] (the claim, the settle and the requeue of jobs), [`attempts`],
//! [`dependencies`], [`schedules`], [`queues`], [`workers`], [`stats`], [`config`], and
//! two families of variants, [`by_state`] (SQLite's statements per job state) and
//! [`page`] (the dashboard's page of jobs); [`copy`] holds what `transfer` runs to move
//! whole queues. Row decoding is in `store::row`, the migrations in `store::migrations`.
//!
//! The rules of these modules:
//! - Parameters are `?N` in SQLite text and `$N` in PostgreSQL text.
//! - A statement both dialects run is a [`Sql`]: [`shared!`] takes its SQLite text and
//!   makes its PostgreSQL text at compile time (each `?` followed by a digit becomes `$`,
//!   nothing else changes). No statement is converted at run time.
//! - A statement whose dialects differ is written once per dialect, in the table module's
//!   `sqlite` and `postgres` submodules, with that dialect's parameters. SQLite's
//!   `INDEXED BY` variants are SQLite statements of their own.
//! - A statement is written whole. Where a family has variants chosen at run time (the
//!   statements per job state, the page query), each variant is joined at compile time by
//!   [`text!`] from named, documented parts, and one `fn` `match`es to the variant's
//!   `&'static str`. Nothing is assembled, replaced or formatted at run time.
//! - A column list comes from `store::row` (`job_col::LIST`), joined in by [`text!`], so
//!   a statement and its row decoder never disagree.
//! - Session and bookkeeping statements that belong to one connection (`PRAGMA`, `SET`,
//!   `LISTEN`, `pg_notify`, the schema version) stay with the store that runs them.

/// A statement both stores run: its SQLite text (`?N` parameters) and its PostgreSQL text
/// (`$N`), the second made from the first at compile time by [`shared!`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sql {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// Text joined at compile time from constant parts: `text!(a, b, ...)` is a
/// `&'static str` constant (each part a `&str` constant expression).
macro_rules! text {
    ($($part:expr),+ $(,)?) => {{
        const PARTS: &[&str] = &[$($part),+];
        const BYTES: [u8; $crate::store::sql::joined_len(PARTS)] = $crate::store::sql::join(PARTS);
        const TEXT: &str = $crate::store::sql::utf8(&BYTES);
        TEXT
    }};
}

/// A statement both dialects run, from its SQLite text (joined from its parts as
/// [`text!`] joins them): a [`Sql`] whose PostgreSQL text has `$N` for each `?N`, made at
/// compile time.
macro_rules! shared {
    ($($part:expr),+ $(,)?) => {{
        const SQLITE: &str = text!($($part),+);
        const BYTES: [u8; SQLITE.len()] = $crate::store::sql::dollars(SQLITE);
        const POSTGRES: &str = $crate::store::sql::utf8(&BYTES);
        $crate::store::sql::Sql { sqlite: SQLITE, postgres: POSTGRES }
    }};
}

pub(crate) mod attempts;
pub(crate) mod by_state;
pub(crate) mod claim;
pub(crate) mod config;
pub(crate) mod copy;
pub(crate) mod dependencies;
pub(crate) mod jobs;
pub(crate) mod page;
pub(crate) mod queues;
pub(crate) mod schedules;
pub(crate) mod stats;
pub(crate) mod workers;

/// The length of `parts` joined.
const fn joined_len(parts: &[&str]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < parts.len() {
        n += parts[i].len();
        i += 1;
    }
    n
}

/// The bytes of `parts` joined; `N` is [`joined_len`] of them.
const fn join<const N: usize>(parts: &[&str]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let mut i = 0;
    while i < parts.len() {
        let part = parts[i].as_bytes();
        let mut j = 0;
        while j < part.len() {
            out[at] = part[j];
            at += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(at == N, "the parts do not fill the text");
    out
}

/// The bytes of `sqlite` with each `?` that a digit follows made `$`: the PostgreSQL
/// text of a shared statement. `N` is its length (the text keeps it).
const fn dollars<const N: usize>(sqlite: &str) -> [u8; N] {
    let bytes = sqlite.as_bytes();
    assert!(bytes.len() == N, "the text has another length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if bytes[i] == b'?' && i + 1 < N && bytes[i + 1].is_ascii_digit() { b'$' } else { bytes[i] };
        i += 1;
    }
    out
}

/// `bytes` as text (they always are: joined or changed from text, ASCII for ASCII).
const fn utf8(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => panic!("a statement is not UTF-8"),
    }
}

/// Every statement of one module, for the tests below.
#[cfg(test)]
#[derive(Default)]
struct Texts {
    pub shared: Vec<Sql>,
    pub sqlite: Vec<&'static str>,
    pub postgres: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `dollars` does, written again the plain way, at run time.
    fn with_dollars(sql: &str) -> String {
        let mut out = String::with_capacity(sql.len());
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
                out.push('$');
            } else {
                out.push(c);
            }
        }
        out
    }

    fn has_param(sql: &str, mark: char) -> bool {
        sql.as_bytes().windows(2).any(|w| w[0] == mark as u8 && w[1].is_ascii_digit())
    }

    fn every_module() -> Vec<(&'static str, Texts)> {
        vec![
            ("attempts", attempts::texts()),
            ("by_state", by_state::texts()),
            ("claim", claim::texts()),
            ("config", config::texts()),
            ("copy", copy::texts()),
            ("dependencies", dependencies::texts()),
            ("jobs", jobs::texts()),
            ("page", page::texts()),
            ("queues", queues::texts()),
            ("schedules", schedules::texts()),
            ("stats", stats::texts()),
            ("workers", workers::texts()),
        ]
    }

    #[test]
    fn compile_time_text() {
        const JOINED: &str = text!("a", "", "bc", "d");
        assert_eq!(JOINED, "abcd");
        const BOTH: Sql = shared!("x = ?1 AND y = ?12 OR z = '?' ", "AND w = ?3?");
        assert_eq!(BOTH.sqlite, "x = ?1 AND y = ?12 OR z = '?' AND w = ?3?");
        assert_eq!(BOTH.postgres, "x = $1 AND y = $12 OR z = '?' AND w = $3?");
    }

    #[test]
    fn shared_statements_differ_only_in_parameters() {
        for (module, texts) in every_module() {
            for sql in texts.shared {
                assert_eq!(sql.postgres, with_dollars(sql.sqlite), "{module}: {}", sql.sqlite);
                assert!(!has_param(sql.postgres, '?'), "{module}: {}", sql.postgres);
                assert!(!has_param(sql.sqlite, '$'), "{module}: {}", sql.sqlite);
            }
        }
    }

    #[test]
    fn dialect_statements_use_their_own_parameters() {
        for (module, texts) in every_module() {
            for sql in texts.sqlite {
                assert!(!has_param(sql, '$'), "{module}: {sql}");
            }
            for sql in texts.postgres {
                assert!(!has_param(sql, '?'), "{module}: {sql}");
            }
        }
    }

    #[test]
    fn no_statement_holds_a_placeholder() {
        let mut seen = 0;
        for (module, texts) in every_module() {
            let all =
                texts.shared.iter().flat_map(|s| [s.sqlite, s.postgres]).chain(texts.sqlite).chain(texts.postgres);
            for sql in all {
                assert!(!sql.contains('{') && !sql.contains('}'), "{module}: {sql}");
                assert!(!sql.trim().is_empty(), "{module}: an empty statement");
                seen += 1;
            }
        }
        assert!(seen > 150, "only {seen} statements were looked at");
    }
}
