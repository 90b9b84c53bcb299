//! The small host program the Windows service tests install (no Windows Python runs on
//! this machine): the same Rust code a queuectl service runs, `queuectl_core::winservice`.
//!
//! `winsvc_host run NAME LOCATION LOGS_DIR LOG_FILE STOP_TIMEOUT_S COUNT` is what the
//! service manager starts.

#[cfg(windows)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 8 || args[1] != "run" {
        eprintln!("usage: winsvc_host run NAME LOCATION LOGS_DIR LOG_FILE STOP_TIMEOUT_S COUNT");
        std::process::exit(2);
    }
    let cfg = queuectl_core::winservice::HostConfig {
        name: args[2].clone(),
        location: args[3].clone(),
        logs_dir: args[4].clone().into(),
        log_file: args[5].clone().into(),
        stop_timeout: std::time::Duration::from_secs(args[6].parse().unwrap_or(60)),
        count: args[7].parse().unwrap_or(1),
        lease_ms: queuectl_core::worker::DEFAULT_LEASE_MS,
        queues: None,
        slots: None,
        host: "winsvc".into(),
    };
    if let Err(e) = queuectl_core::winservice::run(cfg) {
        eprintln!("winsvc_host: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(windows))]
fn main() {
    eprintln!("winsvc_host runs on Windows only");
    std::process::exit(2);
}
