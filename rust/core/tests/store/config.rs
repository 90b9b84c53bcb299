//! Config: settings kept and listed.

use super::*;

conformance!(config_round_trips,);

fn config_round_trips(s: &mut dyn Store) {
    assert_eq!(s.config_get("max-retries").unwrap(), None);
    s.config_set(set("max-retries", "5"), T0).unwrap();
    s.config_set(set("max-retries", "7"), T0 + 1).unwrap();
    s.config_set(set("backoff-base", "3"), T0).unwrap();
    assert_eq!(s.config_get("max-retries").unwrap().as_deref(), Some("7"));
    assert_eq!(
        s.config_list().unwrap(),
        [("backoff-base".to_string(), "3".to_string()), ("max-retries".to_string(), "7".to_string())]
    );
}
