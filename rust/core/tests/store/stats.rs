//! Stats: counters per minute and in total.

use queuectl_core::store::StatRow;

use super::*;

conformance!(stats_add_to_their_minute_and_to_the_total,);

fn stats_add_to_their_minute_and_to_the_total(s: &mut dyn Store) {
    let row = |minute_ms: i64, queue: &str, metric: &str, value: i64| StatRow {
        minute_ms,
        queue: queue.into(),
        metric: metric.into(),
        value,
    };
    let m1 = T0 / 60_000 * 60_000;
    let m2 = m1 + 60_000;
    s.stats_add(&[row(m1, "q", "completed", 3), row(m1, "q", "dead", 1)], 0).unwrap();
    s.stats_add(&[row(m1, "q", "completed", 2), row(m2, "q", "completed", 5)], 0).unwrap();
    let mut totals = s.stats_read(None).unwrap();
    totals.sort_by(|a, b| a.metric.cmp(&b.metric));
    assert_eq!(totals, [row(0, "q", "completed", 10), row(0, "q", "dead", 1)]);
    let minutes = s.stats_read(Some(m1)).unwrap();
    assert!(minutes.contains(&row(m1, "q", "completed", 5)));
    assert!(minutes.contains(&row(m2, "q", "completed", 5)));
    assert_eq!(s.stats_read(Some(m2)).unwrap(), [row(m2, "q", "completed", 5)]);
    // Forgetting old minutes keeps the totals.
    s.stats_add(&[row(m2, "q", "dead", 1)], m2).unwrap();
    assert!(s.stats_read(Some(0)).unwrap().iter().all(|r| r.minute_ms == m2));
    let total_dead = s.stats_read(None).unwrap().into_iter().find(|r| r.metric == "dead").map(|r| r.value);
    assert_eq!(total_dead, Some(2));
}
