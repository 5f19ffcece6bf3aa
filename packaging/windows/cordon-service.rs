//! `cordon-service.exe`: runs `cordon.exe agent run` (from the same folder) as the
//! Windows service `CordonAgent`, restarts it if it exits, and stops it when the service
//! is stopped.
//!
//! Why a separate small wrapper and not the agent itself: the service control protocol
//! (dispatcher thread, status reports within the SCM's timeouts) stays out of the agent,
//! and the agent runs the same way on every OS. Stopping the service never releases a
//! quarantine: WFP filters are persistent and the agent re-applies at start.

#[cfg(windows)]
fn main() -> Result<(), windows_service::Error> {
    service::run()
}

#[cfg(not(windows))]
fn main() {
    eprintln!("cordon-service is the Windows service wrapper; on other systems run `cordon agent run` directly");
    std::process::exit(2);
}

#[cfg(windows)]
mod service {
    use std::ffi::OsString;
    use std::path::PathBuf;
    use std::process::{Child, Command};
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::time::Duration;

    use windows_service::service::{
        ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus,
        ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    use windows_service::{define_windows_service, service_dispatcher};

    pub const SERVICE_NAME: &str = "CordonAgent";
    /// Pause before restarting an agent that exited, so a crash loop does not spin.
    const RESTART_DELAY: Duration = Duration::from_secs(5);

    define_windows_service!(ffi_service_main, service_main);

    pub fn run() -> windows_service::Result<()> {
        service_dispatcher::start(SERVICE_NAME, ffi_service_main)
    }

    fn service_main(_args: Vec<OsString>) {
        // Nowhere to report to but the event log's generic failure; the SCM's recovery
        // settings (see README) restart the service.
        let _ = run_service();
    }

    fn agent_path() -> PathBuf {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("cordon.exe")))
            .unwrap_or_else(|| PathBuf::from("cordon.exe"))
    }

    /// `%ProgramData%\Cordon\agent.toml`, passed explicitly: the same default as
    /// `cordon_engine::paths::default_agent_config` (this package is outside the workspace,
    /// so it is repeated here), never a path relative to the service's current drive.
    fn config_path() -> PathBuf {
        let base = std::env::var("ProgramData")
            .ok()
            .map(|p| p.trim_end_matches(['\\', '/']).to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| r"C:\ProgramData".to_string());
        PathBuf::from(format!(r"{base}\Cordon\agent.toml"))
    }

    fn start_agent() -> Option<Child> {
        Command::new(agent_path())
            .args(["agent", "run", "--config"])
            .arg(config_path())
            .spawn()
            .ok()
    }

    fn status(state: ServiceState, accept: ServiceControlAccept) -> ServiceStatus {
        ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accept,
            exit_code: ServiceExitCode::Win32(0),
            checkpoint: 0,
            wait_hint: Duration::from_secs(10),
            process_id: None,
        }
    }

    fn run_service() -> windows_service::Result<()> {
        let (stop_tx, stop_rx) = mpsc::channel();
        let handler = move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                let _ = stop_tx.send(());
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        };
        let handle = service_control_handler::register(SERVICE_NAME, handler)?;
        handle.set_service_status(status(
            ServiceState::Running,
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        ))?;

        let mut child = start_agent();
        loop {
            match stop_rx.recv_timeout(RESTART_DELAY) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let exited = match child.as_mut() {
                Some(c) => !matches!(c.try_wait(), Ok(None)),
                None => true,
            };
            if exited {
                child = start_agent();
            }
        }
        if let Some(mut c) = child {
            let _ = c.kill();
            let _ = c.wait();
        }
        handle.set_service_status(status(ServiceState::Stopped, ServiceControlAccept::empty()))
    }
}
