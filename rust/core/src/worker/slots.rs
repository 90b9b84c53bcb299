//! The slots of one worker process (`worker start --slots S`): the jobs its workers run
//! need at most S slots together. A claim asks only for jobs that fit the slots free at
//! that moment; two workers of the process that claim at once may both count the same
//! free slots, so each takes its job's slots afterwards, and one that finds them gone puts
//! its job back (uncounted) instead of running it.

use std::sync::atomic::{AtomicU32, Ordering};

/// The slots of a worker process, shared by its workers.
#[derive(Debug)]
pub struct Slots {
    total: u32,
    used: AtomicU32,
}

impl Slots {
    /// A process with `total` slots (at least 1), none used.
    pub fn new(total: u32) -> Slots {
        Slots { total: total.max(1), used: AtomicU32::new(0) }
    }

    /// How many slots the process has.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// How many are free now.
    pub fn free(&self) -> u32 {
        self.total.saturating_sub(self.used.load(Ordering::SeqCst))
    }

    /// Takes `n` slots if that many are free; false (taking none) otherwise.
    pub fn take(&self, n: u32) -> bool {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(n).filter(|after| *after <= self.total)
            })
            .is_ok()
    }

    /// Gives back `n` slots taken before.
    pub fn give(&self, n: u32) {
        let _ = self.used.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| Some(used.saturating_sub(n)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_only_while_free() {
        let s = Slots::new(4);
        assert!(s.take(3));
        assert_eq!(s.free(), 1);
        assert!(!s.take(2), "2 do not fit in 1");
        assert!(s.take(1));
        assert!(!s.take(1));
        s.give(3);
        assert_eq!(s.free(), 3);
        assert_eq!(Slots::new(0).total(), 1);
    }

    #[test]
    fn racing_takes_never_exceed_the_total() {
        let s = std::sync::Arc::new(Slots::new(5));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = std::sync::Arc::clone(&s);
                std::thread::spawn(move || (0..1000).filter(|_| s.take(2)).count())
            })
            .collect();
        let taken: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(taken, 2, "5 slots hold two jobs of 2");
        assert_eq!(s.free(), 1);
    }
}
