//! Runner alone: `sh -c true` through the runner in 2 threads, no store, to separate the
//! cost of spawning from the cost of the database in the end-to-end figure.

use std::time::{Duration, Instant};

use queuectl_core::runner::{run, Control, RunSpec};

fn main() {
    let n: usize = std::env::args().nth(1).map_or(2000, |a| a.parse().expect("a number"));
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|w| {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                for i in 0..n / 2 {
                    let log = dir.join(format!("{w}-{i}.log"));
                    let spec = RunSpec {
                        command: "true",
                        cwd: &dir,
                        env: vec![("QUEUECTL_JOB_ID".to_string(), i.to_string())],
                        log_path: &log,
                        attempt: 1,
                        timeout_ms: 0,
                        kill_grace_ms: 100,
                        log_max_bytes: 0,
                    };
                    run(&spec, Duration::from_millis(200), &mut || Control::Continue).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|h| h.join().unwrap());
    println!("{{\"spawn_per_s\": {:.0}}}", n as f64 / t.elapsed().as_secs_f64());
}
