//! Where Cordon keeps its files by default, per platform.
//!
//! Unix: the agent's enrollment (certificate, key, CA, `agent.toml`) in `/etc/cordon`, the
//! quarantine state in [`DEFAULT_STATE_DIR`](crate::DEFAULT_STATE_DIR) (`/var/lib/cordon`).
//!
//! Windows: `%ProgramData%\Cordon` and `%ProgramData%\Cordon\state`. The Unix paths would
//! be relative to the *current drive* there (`D:\etc\cordon` when enrolling from D:, while
//! the service, started on C:, reads `C:\etc\cordon`), and would inherit the drive root's
//! permissive ACL (trial26 H1). `ProgramData` comes from the environment (Windows sets it
//! for every process, services included); without it, `C:\ProgramData`, never the current
//! drive.

use std::path::{Path, PathBuf};

/// Fallback for `%ProgramData%` when the variable is unset or empty (Windows' own default).
pub const WINDOWS_PROGRAM_DATA_FALLBACK: &str = r"C:\ProgramData";

/// The agent's default configuration directory (enrollment key, certificate, CA and
/// `agent.toml`): `/etc/cordon` on Unix, `%ProgramData%\Cordon` on Windows.
pub fn default_config_dir() -> PathBuf {
    if cfg!(windows) {
        windows_dirs(std::env::var("ProgramData").ok().as_deref()).config
    } else {
        PathBuf::from("/etc/cordon")
    }
}

/// The default state directory (records, claims, lock): `/var/lib/cordon` on Unix,
/// `%ProgramData%\Cordon\state` on Windows.
pub fn default_state_dir() -> PathBuf {
    if cfg!(windows) {
        windows_dirs(std::env::var("ProgramData").ok().as_deref()).state
    } else {
        PathBuf::from(crate::DEFAULT_STATE_DIR)
    }
}

/// The agent's default config file: [`default_config_dir`]`/agent.toml`.
pub fn default_agent_config() -> PathBuf {
    default_config_dir().join("agent.toml")
}

/// Windows' default directories for a given `%ProgramData%` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsDirs {
    /// `PROGRAMDATA\Cordon`: enrollment key, certificate, CA, `agent.toml`.
    pub config: PathBuf,
    /// `PROGRAMDATA\Cordon\state`: quarantine records, claims, lock.
    pub state: PathBuf,
}

/// Windows' default directories given the value of `%ProgramData%` (`None` or empty:
/// [`WINDOWS_PROGRAM_DATA_FALLBACK`]). Pure: strings only, no file system, so it is the
/// same on any host. A trailing separator on the value is dropped.
pub fn windows_dirs(program_data: Option<&str>) -> WindowsDirs {
    let base = program_data
        .map(|p| p.trim_end_matches(['\\', '/']))
        .filter(|p| !p.is_empty())
        .unwrap_or(WINDOWS_PROGRAM_DATA_FALLBACK);
    WindowsDirs {
        config: PathBuf::from(format!(r"{base}\Cordon")),
        state: PathBuf::from(format!(r"{base}\Cordon\state")),
    }
}

/// The DACL [`protect_dir`] sets on Windows, in SDDL: protected (`P`: nothing inherited
/// from `C:\ProgramData`, which lets every user read new sub-folders), full control for
/// SYSTEM (`SY`) and Administrators (`BA`), inherited by every file and folder created in
/// it (`OICI`).
pub const WINDOWS_PRIVATE_DACL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// Restricts an existing directory to its owners: on Windows, replaces its DACL with
/// [`WINDOWS_PRIVATE_DACL`] (SYSTEM and Administrators only, inheritance from the parent
/// cut), which files created in it afterwards inherit and existing children receive. On
/// Unix nothing is done here: the callers create such directories 0700.
///
/// # Errors
/// Windows: the OS error of `ConvertStringSecurityDescriptorToSecurityDescriptorW` or
/// `SetNamedSecurityInfoW` (e.g. access denied when not elevated).
pub fn protect_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(windows)]
    {
        win::set_private_dacl(dir)
    }
    #[cfg(not(windows))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Raw FFI (windows-sys) for [`protect_dir`]: the SDDL string is converted by Windows
/// itself, so no ACL is built by hand here.
#[cfg(windows)]
mod win {
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;

    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        GetSecurityDescriptorDacl, ACL, DACL_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION,
        PSECURITY_DESCRIPTOR,
    };

    fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
        s.encode_wide().chain(std::iter::once(0)).collect()
    }

    pub(super) fn set_private_dacl(dir: &Path) -> std::io::Result<()> {
        let sddl = wide(std::ffi::OsStr::new(super::WINDOWS_PRIVATE_DACL));
        let name = wide(dir.as_os_str());
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `sddl` is a NUL-terminated UTF-16 string that outlives the call; `sd`
        // receives a LocalAlloc'd descriptor, freed below.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut present = 0;
        let mut defaulted = 0;
        let mut dacl: *mut ACL = std::ptr::null_mut();
        // SAFETY: `sd` is the valid descriptor made above; the out pointers are locals.
        let ok = unsafe { GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted) };
        let result = if ok == 0 || present == 0 || dacl.is_null() {
            Err(std::io::Error::last_os_error())
        } else {
            // SAFETY: `name` is NUL-terminated UTF-16; `dacl` points into `sd`, alive
            // until the LocalFree below; owner, group and SACL are left unchanged (null).
            let rc = unsafe {
                SetNamedSecurityInfoW(
                    name.as_ptr(),
                    SE_FILE_OBJECT,
                    DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    dacl,
                    std::ptr::null(),
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::from_raw_os_error(rc as i32))
            }
        };
        // SAFETY: `sd` was allocated by ConvertStringSecurityDescriptor… with LocalAlloc.
        unsafe { LocalFree(sd) };
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_defaults_live_under_program_data_never_the_current_drive() {
        let d = windows_dirs(Some(r"C:\ProgramData"));
        assert_eq!(d.config, PathBuf::from(r"C:\ProgramData\Cordon"));
        assert_eq!(d.state, PathBuf::from(r"C:\ProgramData\Cordon\state"));
        // Another system drive, a trailing separator.
        let d = windows_dirs(Some(r"E:\ProgramData\"));
        assert_eq!(d.config, PathBuf::from(r"E:\ProgramData\Cordon"));
        assert_eq!(d.state, PathBuf::from(r"E:\ProgramData\Cordon\state"));
        // Unset or empty: C:\ProgramData, not a drive-relative \etc\cordon.
        for v in [None, Some("")] {
            let d = windows_dirs(v);
            assert_eq!(d.config, PathBuf::from(r"C:\ProgramData\Cordon"));
            assert_eq!(d.state, PathBuf::from(r"C:\ProgramData\Cordon\state"));
        }
    }

    #[cfg(unix)]
    #[test]
    fn unix_defaults_are_etc_and_var_lib() {
        assert_eq!(default_config_dir(), PathBuf::from("/etc/cordon"));
        assert_eq!(default_agent_config(), PathBuf::from("/etc/cordon/agent.toml"));
        assert_eq!(default_state_dir(), PathBuf::from("/var/lib/cordon"));
    }
}
