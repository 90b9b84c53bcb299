//! Job ids: validation, generation, and the log file name each id maps to.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Longest id accepted, in characters.
pub const MAX_ID_CHARS: usize = 200;

/// Checks a user-given id: 1 to 200 characters, no control characters.
pub fn validate(id: &str) -> Result<()> {
    let n = id.chars().count();
    if n == 0 || n > MAX_ID_CHARS {
        return Err(Error::InvalidInput(format!("field 'id': must be 1 to {MAX_ID_CHARS} characters, got {n}")));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::InvalidInput("field 'id': must not contain control characters".into()));
    }
    Ok(())
}

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Last (time, random) pair handed out, so ids made within one millisecond still sort.
static LAST: Mutex<(i64, u128)> = Mutex::new((0, 0));
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_bits() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut out = 0u128;
    for _ in 0..2 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(out);
        out = (out << 64) | u128::from(h.finish());
    }
    out
}

/// A new id in the ULID layout (26 lower-case Crockford base-32 characters: 48 bits of
/// milliseconds, 80 random bits). Ids made by one process sort in creation order, even
/// within a millisecond; ids from different processes sort by millisecond.
pub fn generate(now_ms: i64) -> String {
    let mask80 = (1u128 << 80) - 1;
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let (ms, rand) = if now_ms <= last.0 && last.1 < mask80 {
        (last.0, last.1 + 1)
    } else {
        (now_ms.max(last.0), random_bits() & (mask80 >> 1))
    };
    *last = (ms, rand);
    drop(last);
    let value = ((ms as u128 & ((1u128 << 48) - 1)) << 80) | rand;
    (0..26).map(|i| CROCKFORD[((value >> (125 - i * 5)) & 31) as usize] as char).collect()
}

/// `n` random lower-case base-32 characters (at most 25), for names that need no order.
pub fn random_token(n: usize) -> String {
    let bits = random_bits();
    (0..n.min(25)).map(|i| CROCKFORD[((bits >> (i * 5)) & 31) as usize] as char).collect()
}

/// FNV-1a, 64 bits: stable across hosts and versions, which the log file name needs.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// The log file of job `id` inside `logs_dir`. The name keeps up to 40 safe characters of
/// the id for people, then a hash of the whole id, so ids that differ only in case or in
/// unsafe characters never share a file, and no id can name a path outside `logs_dir`.
pub fn log_path(logs_dir: &Path, id: &str) -> PathBuf {
    let readable: String = id
        .chars()
        .take(40)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '_' })
        .collect();
    logs_dir.join(format!("{readable}.{:016x}.log", fnv1a(id.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_sort_and_differ() {
        let ids: Vec<String> = (0..1000).map(|i| generate(1_700_000_000_000 + i / 100)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        sorted.dedup();
        assert_eq!(sorted.len(), 1000);
        assert!(ids.iter().all(|i| i.len() == 26));
    }

    #[test]
    fn log_paths_stay_inside() {
        let dir = Path::new("/tmp/logs");
        for id in ["../x", "../../etc/passwd", "a/b", "C:\\x", "/abs", ".", "..", "é漢字"] {
            let p = log_path(dir, id);
            assert_eq!(p.parent(), Some(dir), "{id}");
            assert!(!p.file_name().unwrap().to_str().unwrap().starts_with('.'));
        }
        assert_ne!(log_path(dir, "A"), log_path(dir, "a"));
        assert_ne!(log_path(dir, "a/b"), log_path(dir, "a_b"));
    }

    #[test]
    fn validation() {
        assert!(validate("ok-id").is_ok());
        assert!(validate("").is_err());
        assert!(validate("a\nb").is_err());
        assert!(validate("a\0b").is_err());
        assert!(validate(&"x".repeat(200)).is_ok());
        assert!(validate(&"x".repeat(201)).is_err());
    }
}
