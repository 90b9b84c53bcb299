//! Reads for people and for `check` on SQLite: jobs, pages, counts, history, the schema.

use rusqlite::{params, OptionalExtension};

use super::{collect, decode, SqliteStore};
use crate::error::{Error, Result};
use crate::job::{Attempt, Job, JobState};
use crate::store::page as page_bounds;
use crate::store::row::{self, job_col};
use crate::store::sql::{attempts, by_state, dependencies, jobs, page};
use crate::store::{JobInspect, ListFilter, Page, PageFilter};

impl JobInspect for SqliteStore {
    fn job_get(&mut self, id: &str) -> Result<Job> {
        let mut st = self.conn.prepare_cached(jobs::GET.sqlite)?;
        let mut rows = st.query(params![id])?;
        match rows.next()? {
            Some(r) => row::job_from(r, 0),
            None => Err(Error::NotFound(id.to_string())),
        }
    }

    fn job_list_where(&mut self, f: &ListFilter<'_>) -> Result<Vec<Job>> {
        let limit = f.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        // One statement per state, naming it literally, so that SQLite can prove which
        // partial index holds it (a bound parameter cannot). Completed jobs are in no index:
        // they are read in enqueue order from the table itself, where they come first.
        let sql = match f.state {
            Some(state) => by_state::list(state),
            None => jobs::sqlite::LIST_ALL_STATES,
        };
        let mut st = self.conn.prepare_cached(sql)?;
        let rows = st.query_map(params![limit, f.queue], decode(|r| row::job_from(r, 0)))?;
        collect(rows)
    }

    fn job_page(&mut self, f: &PageFilter<'_>) -> Result<Page> {
        // Dead, cancelled and waiting jobs have partial indexes in seq order, and a queue
        // has jobs_all (queue, seq): those pages read only what they return. The rest are
        // read newest first from the table itself, at most a window of it per page.
        let windowed = f.search.is_some()
            || (f.state.is_some() && f.queue.is_some())
            || matches!(f.state, Some(JobState::Pending | JobState::Failed | JobState::Completed));
        let sql = page::sqlite(f.state, f.queue.is_some(), f.search.is_some());
        let tx = self.conn.transaction()?;
        let max: Option<i64> = tx.prepare_cached(jobs::sqlite::MAX_SEQ)?.query_row([], |r| r.get(0))?;
        let min: Option<i64> = tx.prepare_cached(jobs::sqlite::MIN_SEQ)?.query_row([], |r| r.get(0))?;
        let (Some(max), Some(min)) = (max, min) else {
            return Ok(Page::default());
        };
        let (upper, lower) = page_bounds::bounds(f.before, max, windowed);
        let limit = i64::try_from(f.limit).unwrap_or(i64::MAX);
        let found: Vec<(i64, Job)> = {
            let mut st = tx.prepare_cached(sql)?;
            let rows = st.query_map(
                params![limit, f.queue, upper, lower, f.search],
                decode(|r| Ok((r.get::<_, i64>(job_col::seq)?, row::job_from(r, 0)?))),
            )?;
            collect(rows)?
        };
        tx.commit()?;
        let (seqs, jobs): (Vec<i64>, Vec<Job>) = found.into_iter().unzip();
        Ok(Page { jobs, next: page_bounds::next(&seqs, f.limit, lower, min) })
    }

    fn job_count_by_state(&mut self) -> Result<Vec<(JobState, u64)>> {
        // Completed jobs are most of a long-lived queue and in no index: they are the total
        // (jobs::sqlite::COUNT_ALL) minus the rest.
        let tx = self.conn.transaction()?;
        let total: i64 = tx.prepare_cached(jobs::sqlite::COUNT_ALL)?.query_row([], |r| r.get(0))?;
        let mut counts = Vec::with_capacity(JobState::ALL.len());
        let mut others = 0;
        for s in JobState::ALL {
            if s != JobState::Completed {
                let n: i64 = tx.prepare_cached(by_state::count(s))?.query_row([], |r| r.get(0))?;
                others += n;
                counts.push((s, n as u64));
            }
        }
        tx.commit()?;
        let at = JobState::ALL.iter().position(|s| *s == JobState::Completed).unwrap_or(0);
        counts.insert(at, (JobState::Completed, (total - others).max(0) as u64));
        Ok(counts)
    }

    fn job_parents(&mut self, id: &str) -> Result<Vec<(String, JobState)>> {
        let mut st = self.conn.prepare_cached(dependencies::PARENTS.sqlite)?;
        let rows = st.query_map(params![id], decode(|r| row::parent_from(r)))?;
        collect(rows)
    }

    fn job_attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        let job_exists = self.conn.prepare_cached(jobs::EXISTS.sqlite)?.exists(params![id])?;
        if !job_exists {
            return Err(Error::NotFound(id.to_string()));
        }
        let mut st = self.conn.prepare_cached(attempts::LIST.sqlite)?;
        let rows = st.query_map(params![id], decode(|r| row::attempt_from(r)))?;
        collect(rows)
    }

    fn job_ahead(&mut self, id: &str, now_ms: i64) -> Result<u64> {
        let n: Option<i64> =
            self.conn.prepare_cached(jobs::sqlite::AHEAD)?.query_row(params![id, now_ms], |r| r.get(0)).optional()?;
        n.map(|n| n as u64).ok_or_else(|| Error::NotFound(id.to_string()))
    }

    fn schema_version(&mut self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn table_columns(&mut self, table: &str) -> Result<Vec<String>> {
        let mut st = self.conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
        let rows = st.query_map(params![table], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn file_integrity(&mut self, limit: usize) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        self.conn.pragma(None, "integrity_check", limit as i64, |r| {
            lines.push(r.get::<_, String>(0)?);
            Ok(())
        })?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }

    fn check_rows(&mut self, sql: &str, now_ms: i64) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(sql)?;
        let uses_now = st.parameter_count() > 0;
        let now: &[&dyn rusqlite::ToSql] = if uses_now { &[&now_ms] } else { &[] };
        let rows = st.query_map(now, |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn describe(&self) -> String {
        format!("sqlite {} at {}", rusqlite::version(), self.path)
    }
}
