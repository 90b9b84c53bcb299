//! Worker services on Windows: the executable answers the service manager itself.
//!
//! [`run`] is what the service manager starts: it connects to the dispatcher, reports
//! start-pending, starts the worker pool in-process, reports running once every worker is
//! registered, and on Stop or Shutdown stops gracefully, reporting stop-pending with a
//! rising checkpoint until the running jobs finish or the stop timeout passes (then they
//! are killed and requeued, as a forced stop does). [`install`] and [`uninstall`] create
//! and remove the service through the service manager's API. The worker events go to a
//! log file: a service has no console.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept, ServiceErrorControl,
    ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState,
    ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use crate::error::{Error, Result};
use crate::events::{Event, Observer, Observers, StderrLog};
use crate::stats::Rollup;
use crate::store::{QueueFilter, StopLevel, StoreOptions};
use crate::worker::{new_worker_id, Pool, Slots, WorkerConfig};

pub use windows_service::service::ServiceState as State;

const SERVICE_TYPE: ServiceType = ServiceType::OWN_PROCESS;

/// What a hosted service runs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The service's name, as registered with the service manager.
    pub name: String,
    /// The store location: a SQLite path or a PostgreSQL URL.
    pub location: String,
    pub logs_dir: PathBuf,
    /// Where the worker events are appended.
    pub log_file: PathBuf,
    pub count: usize,
    pub lease_ms: i64,
    /// How long running jobs get to finish once a stop is asked for.
    pub stop_timeout: Duration,
    pub queues: Option<Vec<String>>,
    /// The slots of the process (`worker start --slots`); None: as many as workers.
    pub slots: Option<u32>,
    pub host: String,
}

static HOSTED: OnceLock<HostConfig> = OnceLock::new();

fn win_err(what: &str, e: windows_service::Error) -> Error {
    Error::Io(format!("{what}: {e}"))
}

/// Hands this process to the service manager as the service `cfg.name`; returns when the
/// service has stopped. Fails (error 1063) when the process was not started by it.
pub fn run(cfg: HostConfig) -> Result<()> {
    let name = cfg.name.clone();
    let _ = HOSTED.set(cfg);
    service_dispatcher::start(name, ffi_service_main)
        .map_err(|e| win_err("the service manager refused this process", e))
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    let Some(cfg) = HOSTED.get() else { return };
    let log = FileLog::open(&cfg.log_file);
    if let Err(e) = serve(cfg, &log) {
        log.line("service", &format!("stopped on error: {e}"));
    }
}

/// Appends one line per worker event (and per service step) to the service's log file.
struct FileLog {
    file: Mutex<Option<std::fs::File>>,
}

impl FileLog {
    fn open(path: &std::path::Path) -> FileLog {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok();
        FileLog { file: Mutex::new(file) }
    }

    fn line(&self, who: &str, what: &str) {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = guard.as_mut() {
            let _ = writeln!(f, "{} {who} {what}", crate::clock::format_iso8601(crate::clock::now_ms()));
        }
    }
}

impl Observer for FileLog {
    fn on_event(&self, event: &Event<'_>) {
        self.line("worker", &StderrLog::describe(event));
    }
}

fn status(state: ServiceState, accept: ServiceControlAccept, checkpoint: u32, wait: Duration) -> ServiceStatus {
    ServiceStatus {
        service_type: SERVICE_TYPE,
        current_state: state,
        controls_accepted: accept,
        exit_code: ServiceExitCode::Win32(0),
        checkpoint,
        wait_hint: wait,
        process_id: None,
    }
}

fn serve(cfg: &HostConfig, log: &FileLog) -> Result<()> {
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            let _ = stop_tx.send(());
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = service_control_handler::register(&cfg.name, handler)
        .map_err(|e| win_err("cannot register with the service manager", e))?;
    let report = |s: ServiceStatus| handle.set_service_status(s).map_err(|e| win_err("cannot report the status", e));
    report(status(ServiceState::StartPending, ServiceControlAccept::empty(), 1, Duration::from_secs(30)))?;
    let rollup = Arc::new(Rollup::default());
    let observer: Arc<dyn Observer> = Arc::new(Observers(vec![Arc::new(FileLog::open(&cfg.log_file)), rollup.clone()]));
    let filter = cfg.queues.as_ref().map(|q| QueueFilter::new(q)).transpose()?;
    let slots = Arc::new(Slots::new(cfg.slots.unwrap_or_else(|| u32::try_from(cfg.count).unwrap_or(u32::MAX))));
    let cfgs = (0..cfg.count)
        .map(|_| WorkerConfig {
            lease_ms: cfg.lease_ms,
            queues: filter.clone(),
            slots: Arc::clone(&slots),
            observer: Arc::clone(&observer),
            rollup: Some(Arc::clone(&rollup)),
            ..WorkerConfig::new(new_worker_id(), cfg.host.clone(), std::process::id(), cfg.logs_dir.clone())
        })
        .collect();
    let pool = match Pool::start(&cfg.location, &StoreOptions { durable: false, ..Default::default() }, cfgs) {
        Ok(pool) => pool,
        Err(e) => {
            let mut stopped = status(ServiceState::Stopped, ServiceControlAccept::empty(), 0, Duration::ZERO);
            stopped.exit_code = ServiceExitCode::ServiceSpecific(1);
            report(stopped)?;
            return Err(e);
        }
    };
    log.line("service", &format!("running {} worker(s): {}", cfg.count, pool.worker_ids().join(", ")));
    let accept = ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN;
    report(status(ServiceState::Running, accept, 0, Duration::ZERO))?;
    // Until the manager asks for a stop, or the workers end by themselves (a lasting fault).
    while !pool.wait(Duration::from_millis(250)) {
        if stop_rx.try_recv().is_ok() {
            break;
        }
    }
    log.line("service", "stopping: running jobs finish");
    pool.request_stop(StopLevel::Graceful);
    let asked = Instant::now();
    let mut checkpoint = 1;
    let mut forced = false;
    while !pool.wait(Duration::from_millis(500)) {
        if !forced && asked.elapsed() >= cfg.stop_timeout {
            log.line("service", "stop timeout: killing and requeueing the jobs still running");
            pool.request_stop(StopLevel::Force);
            forced = true;
        }
        report(status(ServiceState::StopPending, ServiceControlAccept::empty(), checkpoint, Duration::from_secs(5)))?;
        checkpoint += 1;
    }
    let summary = pool.join();
    let mut stopped = status(ServiceState::Stopped, ServiceControlAccept::empty(), 0, Duration::ZERO);
    if let Err(e) = &summary {
        log.line("service", &format!("the workers ended on error: {e}"));
        stopped.exit_code = ServiceExitCode::ServiceSpecific(1);
    }
    log.line("service", "stopped");
    report(stopped)?;
    Ok(())
}

/// A service to create.
#[derive(Debug, Clone)]
pub struct InstallSpec {
    pub name: String,
    pub description: String,
    pub executable: PathBuf,
    pub arguments: Vec<OsString>,
    /// The account it runs as; None: NT AUTHORITY\LocalService; "LocalSystem": that one.
    pub account: Option<String>,
}

/// Creates the service: automatic start, a description, restarts after failures (crashes
/// and non-zero exits alike), the account. Does not start it. Returns notes on what the
/// service manager would not take but the service runs without (Wine's has no
/// "recovery after non-crash failures"); a service created but not configured is deleted.
pub fn install(spec: &InstallSpec) -> Result<Vec<String>> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(|e| win_err("cannot open the service manager", e))?;
    let info = ServiceInfo {
        name: OsString::from(&spec.name),
        display_name: OsString::from(format!("queuectl workers ({})", spec.name)),
        service_type: SERVICE_TYPE,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: spec.executable.clone(),
        launch_arguments: spec.arguments.clone(),
        dependencies: vec![],
        account_name: match spec.account.as_deref() {
            Some("LocalSystem") => None,
            other => Some(OsString::from(other.unwrap_or("NT AUTHORITY\\LocalService"))),
        },
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_STATUS | ServiceAccess::DELETE)
        .map_err(|e| win_err(&format!("cannot create the service {}", spec.name), e))?;
    let configured = (|| {
        service.set_description(&spec.description).map_err(|e| win_err("cannot set the description", e))?;
        let restart =
            |secs| ServiceAction { action_type: ServiceActionType::Restart, delay: Duration::from_secs(secs) };
        service
            .update_failure_actions(ServiceFailureActions {
                reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
                reboot_msg: None,
                command: None,
                actions: Some(vec![restart(5), restart(30), restart(120)]),
            })
            .map_err(|e| win_err("cannot set the recovery actions", e))?;
        let mut notes = Vec::new();
        if let Err(e) = service.set_failure_actions_on_non_crash_failures(true) {
            notes.push(format!("recovery after non-crash failures (exit codes) could not be set: {e}"));
        }
        Ok(notes)
    })();
    if configured.is_err() {
        let _ = service.delete();
    }
    configured
}

fn open(name: &str, access: ServiceAccess) -> Result<windows_service::service::Service> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(|e| win_err("cannot open the service manager", e))?;
    manager.open_service(name, access).map_err(|e| win_err(&format!("no service {name}"), e))
}

/// The service's state and process id, as the service manager reports them.
pub fn query(name: &str) -> Result<(ServiceState, Option<u32>)> {
    let s = open(name, ServiceAccess::QUERY_STATUS)?.query_status().map_err(|e| win_err("cannot query", e))?;
    Ok((s.current_state, s.process_id))
}

/// Starts the service.
pub fn start(name: &str) -> Result<()> {
    open(name, ServiceAccess::START)?.start::<&str>(&[]).map_err(|e| win_err(&format!("cannot start {name}"), e))
}

/// Asks the service to stop (it lets running jobs finish); returns at once.
pub fn stop(name: &str) -> Result<()> {
    open(name, ServiceAccess::STOP)?.stop().map(drop).map_err(|e| win_err(&format!("cannot stop {name}"), e))
}

/// Waits until the service reports `state`, up to `timeout`.
pub fn wait_for(name: &str, state: ServiceState, timeout: Duration) -> Result<()> {
    let until = Instant::now() + timeout;
    loop {
        if query(name)?.0 == state {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(Error::Io(format!("the service {name} did not reach {state:?} within {timeout:?}")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops the service (its jobs finish, up to its stop timeout, within `timeout`), deletes
/// it, and waits until the service manager no longer knows it.
pub fn uninstall(name: &str, timeout: Duration) -> Result<()> {
    let service = open(name, ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)?;
    let now = service.query_status().map_err(|e| win_err("cannot query", e))?;
    if now.current_state != ServiceState::Stopped {
        if now.current_state != ServiceState::StopPending {
            service.stop().map_err(|e| win_err(&format!("cannot stop {name}"), e))?;
        }
        wait_for(name, ServiceState::Stopped, timeout)?;
    }
    service.delete().map_err(|e| win_err(&format!("cannot delete {name}"), e))?;
    drop(service);
    let until = Instant::now() + timeout;
    while open(name, ServiceAccess::QUERY_STATUS).is_ok() {
        if Instant::now() >= until {
            return Err(Error::Io(format!("the service {name} is marked for deletion but still exists")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
