//! Reads for people and for `check` on PostgreSQL: jobs, pages, counts, history, the
//! schema.

use postgres::types::ToSql;

use super::PostgresStore;
use crate::error::{Error, Result};
use crate::job::{Attempt, Job, JobState};
use crate::store::page as page_bounds;
use crate::store::row::{self, job_col};
use crate::store::sql::{attempts, dependencies, jobs, page};
use crate::store::{JobInspect, ListFilter, Page, PageFilter};

impl JobInspect for PostgresStore {
    fn job_get(&mut self, id: &str) -> Result<Job> {
        let rows = self.read(jobs::GET.postgres, &[&id])?;
        rows.first().map(|r| row::job_from(r, 0)).transpose()?.ok_or_else(|| Error::NotFound(id.to_string()))
    }

    fn job_list_where(&mut self, f: &ListFilter<'_>) -> Result<Vec<Job>> {
        let limit = f.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let state = f.state.map(JobState::as_str);
        let rows = self.read(jobs::postgres::LIST, &[&state, &f.queue, &limit])?;
        rows.iter().map(|r| row::job_from(r, 0)).collect()
    }

    fn job_page(&mut self, f: &PageFilter<'_>) -> Result<Page> {
        // jobs_state (state, seq) holds every state in seq order; a queue or a search is
        // read newest first from the table, at most a window of it per page.
        let windowed = f.search.is_some() || f.queue.is_some();
        let sql = page::postgres(f.state, f.queue.is_some(), f.search.is_some());
        let limit = i64::try_from(f.limit).unwrap_or(i64::MAX);
        let (before, queue, search) = (f.before, f.queue, f.search);
        let (bounds, rows) = self.with(|c, _| {
            let mut tx = c.build_transaction().read_only(true).start()?;
            let b = tx.query_one(jobs::postgres::SEQ_BOUNDS, &[])?;
            let (max, min): (Option<i64>, Option<i64>) = (b.get(0), b.get(1));
            let (Some(max), Some(min)) = (max, min) else {
                return Ok((None, Vec::new()));
            };
            let (upper, lower) = page_bounds::bounds(before, max, windowed);
            let rows = tx.query(sql, &[&limit, &queue, &upper, &lower, &search])?;
            tx.commit()?;
            Ok((Some((lower, min)), rows))
        })?;
        let Some((lower, min)) = bounds else {
            return Ok(Page::default());
        };
        let mut seqs = Vec::with_capacity(rows.len());
        let mut jobs = Vec::with_capacity(rows.len());
        for r in &rows {
            seqs.push(r.get::<_, i64>(job_col::seq));
            jobs.push(row::job_from(r, 0)?);
        }
        Ok(Page { jobs, next: page_bounds::next(&seqs, f.limit, lower, min) })
    }

    fn job_count_by_state(&mut self) -> Result<Vec<(JobState, u64)>> {
        let rows = self.with(|c, _| Ok(c.query(jobs::postgres::COUNT_BY_STATE, &[])?))?;
        let mut counts: Vec<(JobState, u64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        for r in &rows {
            let name: &str = r.get(0);
            let state = row::state_of(name)?;
            let n: i64 = r.get(1);
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
                slot.1 = n as u64;
            }
        }
        Ok(counts)
    }

    fn job_parents(&mut self, id: &str) -> Result<Vec<(String, JobState)>> {
        self.read(dependencies::PARENTS.postgres, &[&id])?.iter().map(row::parent_from).collect()
    }

    fn job_attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        if self.read(jobs::EXISTS.postgres, &[&id])?.is_empty() {
            return Err(Error::NotFound(id.to_string()));
        }
        self.read(attempts::LIST.postgres, &[&id])?.iter().map(row::attempt_from).collect()
    }

    fn job_ahead(&mut self, id: &str, now_ms: i64) -> Result<u64> {
        let rows = self.read(jobs::postgres::AHEAD, &[&id, &now_ms])?;
        let n: i64 = rows.first().map(|r| r.get(0)).ok_or_else(|| Error::NotFound(id.to_string()))?;
        Ok(n as u64)
    }

    fn schema_version(&mut self) -> Result<i64> {
        self.with(|c, _| Ok(c.query_one("SELECT max(version) FROM queuectl_schema", &[])?.get(0)))
    }

    fn table_columns(&mut self, table: &str) -> Result<Vec<String>> {
        let rows = self.read(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn file_integrity(&mut self, _limit: usize) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn check_rows(&mut self, sql: &str, now_ms: i64) -> Result<Vec<String>> {
        self.with(|c, _| {
            let st = c.prepare(sql)?;
            let now: &[&(dyn ToSql + Sync)] = if st.params().is_empty() { &[] } else { &[&now_ms] };
            Ok(c.query(&st, now)?.iter().map(|r| r.get(0)).collect())
        })
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}
