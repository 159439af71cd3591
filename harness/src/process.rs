//! Child-process plumbing: free ports, running servers as an unprivileged user, waiting for a
//! port, stopping gracefully, and the guardian that cleans up after the process that started them.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// A free TCP port on 127.0.0.1 (bound and released; the server binds it right after).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a probe socket on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// The uid/gid servers run as. PostgreSQL and PgBouncer refuse to run as root, so when this
/// process is root they run as the `postgres` system user; otherwise as ourselves.
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

pub fn unprivileged_user() -> Result<Option<RunAs>> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .context("running `id -u`")?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .context("running `id postgres`")?;
        if !out.status.success() {
            bail!("running as root, but there is no `postgres` user to run PostgreSQL as (install postgresql-15)");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok(Some(RunAs {
        uid: id("-u")?,
        gid: id("-g")?,
    }))
}

/// Gives `path` (recursively) to `who`, so an unprivileged server can write there.
pub fn chown_tree(path: &Path, who: Option<RunAs>) -> Result<()> {
    if let Some(who) = who {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", who.uid, who.gid))
            .arg(path)
            .status()?;
        if !status.success() {
            bail!("chown of {} failed", path.display());
        }
    }
    Ok(())
}

/// Builds a command that runs as `who` in its own process group (so a terminal's Ctrl-C reaches
/// only the process that started it, which then stops the server in order), with output to `log`.
pub fn server_command(program: &Path, who: Option<RunAs>, log: &Path) -> Result<Command> {
    use std::os::unix::process::CommandExt;
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log file {}", log.display()))?;
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0);
    if let Some(who) = who {
        cmd.uid(who.uid).gid(who.gid).env("HOME", "/tmp");
    }
    Ok(cmd)
}

/// A server process we started, stoppable once.
#[derive(Debug)]
pub struct ServerProcess {
    name: &'static str,
    pid: u32,
    child: Mutex<Option<Child>>,
    log: PathBuf,
    stop_signal: &'static str,
}

impl ServerProcess {
    pub fn new(name: &'static str, child: Child, log: PathBuf, stop_signal: &'static str) -> Self {
        ServerProcess {
            name,
            pid: child.id(),
            child: Mutex::new(Some(child)),
            log,
            stop_signal,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Waits until `port` accepts connections, failing early (with the log's tail) if the
    /// process exits first.
    pub fn wait_for_port(&self, port: u16, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.lock().map_err(|_| anyhow!("poisoned"))?.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "{} exited ({status}) before listening on port {port}; its log {} ends with:\n{}",
                        self.name,
                        self.log.display(),
                        log_tail(&self.log)
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on port {port} within {timeout:?}; its log {} ends with:\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends the server's graceful stop signal, waits up to 10 s, then kills it. Idempotent.
    pub fn stop(&self) {
        let Ok(mut guard) = self.child.lock() else {
            return;
        };
        let Some(mut child) = guard.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg(format!("-{}", self.stop_signal))
            .arg(child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Watches the process that started the servers and, once it is gone (normal exit, failed test,
/// panic or kill), stops every registered process and, for a temporary directory, removes it.
///
/// It is a small shell loop in its own process group, so it outlives whatever killed its parent.
#[derive(Debug)]
pub struct Guardian {
    pid_file: PathBuf,
    _child: Child,
}

const GUARDIAN_SCRIPT: &str = r#"
parent="$1"; dir="$2"; remove="$3"; pids="$dir/.guardian-pids"
while kill -0 "$parent" 2>/dev/null; do sleep 0.5; done
if [ -f "$pids" ]; then
  for p in $(cat "$pids"); do kill -TERM "$p" 2>/dev/null; done
  i=0
  while [ $i -lt 50 ]; do
    alive=0
    for p in $(cat "$pids"); do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.2; i=$((i+1))
  done
  for p in $(cat "$pids"); do kill -KILL "$p" 2>/dev/null; done
fi
if [ "$remove" = 1 ]; then rm -rf "$dir"; fi
"#;

fn register_pid(pid_file: &Path, pid: u32) {
    if let Ok(mut f) = OpenOptions::new().append(true).open(pid_file) {
        let _ = writeln!(f, "{pid}");
    }
}

impl Guardian {
    pub fn spawn(dir: &Path, remove_dir: bool) -> Result<Guardian> {
        use std::os::unix::process::CommandExt;
        let pid_file = dir.join(".guardian-pids");
        std::fs::write(&pid_file, "")?;
        let child = Command::new("sh")
            .arg("-c")
            .arg(GUARDIAN_SCRIPT)
            .arg("prismicx-guardian")
            .arg(std::process::id().to_string())
            .arg(dir)
            .arg(if remove_dir { "1" } else { "0" })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting the harness guardian (`sh`)")?;
        Ok(Guardian {
            pid_file,
            _child: child,
        })
    }

    /// Registers a process to stop when the starting process ends.
    pub fn watch_pid(&self, pid: u32) {
        register_pid(&self.pid_file, pid);
    }

    /// A function registering pids with this guardian, for code that starts processes later
    /// (on another task).
    pub fn pid_registrar(&self) -> impl Fn(u32) + Send + Sync + 'static {
        let file = self.pid_file.clone();
        move |pid| register_pid(&file, pid)
    }
}
