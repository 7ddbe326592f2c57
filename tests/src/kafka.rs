//! The Kafka side of the harness: the wire gateway (`kafdo-gateway`) in front of a Worker, and
//! the real Kafka clients that talk to it (kcat, confluent-kafka and kafka-python from the
//! `.venv` that `make tools` makes, kafkajs from `node_modules`).
//!
//! - [`Gateway::start`]`(url)` runs `kafdo-gateway --listen 127.0.0.1:PORT --url URL` on a free
//!   port, led by the same watchdog shell as `wrangler dev` (its own process group, killed when
//!   the test process is gone), its output in a log file of its own, and waits until the port
//!   accepts a connection. [`Gateway::kill`] SIGKILLs it, [`Gateway::restart`] starts it again
//!   on the same port, and [`Drop`] kills it.
//! - [`Tool`] runs one client program (a script of `tests/kafka/`, or kcat) with arguments,
//!   environment and standard input, under a timeout, and hands back its standard output; it
//!   panics with the program's standard error when it fails. [`Tool::spawn`] runs it in the
//!   background (the gateway-restart test kills the gateway under a running producer).

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::{free_port, repo_root, signal_group, tail_of, wait_group_gone, TempDir, WATCHDOG};

/// How long the gateway may take to accept a TCP connection after it is started.
pub const GATEWAY_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client program may run unless its [`Tool`] says otherwise.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(180);

/// The gateway binary: `KAFDO_GATEWAY_BIN` if set (`make test` sets it; a relative path is
/// taken from the repo root), else `<repo>/target/debug/kafdo-gateway`.
pub fn gateway_bin() -> PathBuf {
    match std::env::var_os("KAFDO_GATEWAY_BIN") {
        Some(path) if !path.is_empty() => repo_root().join(path),
        _ => repo_root().join("target/debug/kafdo-gateway"),
    }
}

/// A running `kafdo-gateway` on a loopback port, in front of one Worker; killed on drop.
#[derive(Debug)]
pub struct Gateway {
    /// The Worker's base URL it forwards to.
    url: String,
    port: u16,
    /// The watchdog shell that leads the gateway's process group.
    child: Option<Child>,
    /// Holds `gateway.log`: the output of every start, appended.
    dir: TempDir,
    starts: u32,
    /// Where the current start's output begins in the log.
    log_start: u64,
}

impl Gateway {
    /// Starts the gateway on a free port in front of the Worker at `url` and waits until it
    /// accepts TCP connections. Panics if the binary is missing (build it with
    /// `cargo build -p kafdo-gateway`; `make test` does), if it exits, or if it does not listen
    /// within [`GATEWAY_START_TIMEOUT`].
    pub fn start(url: &str) -> Gateway {
        let bin = gateway_bin();
        assert!(
            bin.is_file(),
            "the Kafka gateway is not built: {} is missing. Run `cargo build -p kafdo-gateway` \
             (make test does), or point KAFDO_GATEWAY_BIN at the binary.",
            bin.display()
        );
        let mut gateway = Gateway {
            url: url.trim_end_matches('/').to_string(),
            port: free_port(),
            child: None,
            dir: TempDir::new("kafdo-gateway"),
            starts: 0,
            log_start: 0,
        };
        gateway.launch();
        gateway
    }

    /// The Kafka bootstrap address, `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The log file (every start's output, one after the other).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("gateway.log")
    }

    /// The last part of the whole log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail_of(&self.log_path(), 0, 16 * 1024)
    }

    /// Kills the gateway with SIGKILL (its whole process group) and waits until it is gone.
    /// Connections it held are cut without a goodbye.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as i32;
        signal_group(pgid, "KILL");
        wait_group_gone(pgid, Duration::from_secs(5));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the gateway if it runs and starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn launch(&mut self) {
        self.starts += 1;
        let log = self.log_path();
        self.log_start = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let header = format!(
            "--- kafdo-e2e: start {} of the gateway on {} for {} ---\n",
            self.starts,
            self.bootstrap(),
            self.url
        );
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| file.write_all(header.as_bytes()))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", log.display()));
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("kafdo-e2e-watchdog")
            .arg(gateway_bin())
            .arg("--listen")
            .arg(self.bootstrap())
            .arg("--url")
            .arg(&self.url)
            .current_dir(repo_root())
            .env("KAFDO_E2E_LOG", &log)
            .env("KAFDO_E2E_PARENT", std::process::id().to_string())
            .env("KAFDO_E2E_CLEANUP", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the gateway's watchdog shell: {e}"));
        self.child = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let started = Instant::now();
        let address: SocketAddr = self.bootstrap().parse().expect("a socket address");
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok() {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .expect("launched")
                .try_wait()
                .expect("try_wait")
                .is_some();
            if exited {
                panic!(
                    "the gateway exited before listening on {}; its output:\n{}",
                    self.bootstrap(),
                    tail_of(&self.log_path(), self.log_start, 16 * 1024)
                );
            }
            if started.elapsed() > GATEWAY_START_TIMEOUT {
                panic!(
                    "the gateway did not listen on {} within {GATEWAY_START_TIMEOUT:?}; its output:\n{}",
                    self.bootstrap(),
                    tail_of(&self.log_path(), self.log_start, 16 * 1024)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Python of the venv that `make tools` makes (`<repo>/.venv/bin/python`, with
/// confluent-kafka and kafka-python); panics with a clear message when it is missing.
pub fn venv_python() -> PathBuf {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make tools` (it installs tests/kafka/requirements.txt)",
        python.display()
    );
    python
}

/// kcat: the one on `PATH`, else the one `make tools` unpacked without root
/// (`<repo>/.tools/bin/kcat`, a wrapper that finds its libraries); panics when there is none.
pub fn kcat_bin() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("kcat"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_default();
    let local = repo_root().join(".tools/bin/kcat");
    on_path
        .or_else(|| local.is_file().then_some(local))
        .unwrap_or_else(|| panic!("kcat is not installed: run `make tools`"))
}

/// A client program to run: a script of `tests/kafka/` (Python from the venv, or node) or
/// kcat, run from the repo root. Build it with the methods below, then [`Tool::run`] it.
#[derive(Debug)]
pub struct Tool {
    name: String,
    command: Command,
    input: Vec<u8>,
    timeout: Duration,
}

impl Tool {
    /// `tests/kafka/<script>` run by the venv's Python ([`venv_python`]).
    pub fn python(script: &str) -> Tool {
        let mut tool = Tool::new(script, venv_python());
        tool.command
            .arg(kafka_scripts().join(script))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
        tool
    }

    /// `tests/kafka/<script>` run by `node` (kafkajs resolves from the repo's `node_modules`).
    pub fn node(script: &str) -> Tool {
        let mut tool = Tool::new(script, "node");
        tool.command.arg(kafka_scripts().join(script));
        tool
    }

    /// kcat ([`kcat_bin`]).
    pub fn kcat() -> Tool {
        Tool::new("kcat", kcat_bin())
    }

    fn new(name: &str, program: impl AsRef<OsStr>) -> Tool {
        let mut command = Command::new(program);
        command.current_dir(repo_root());
        Tool {
            name: name.to_string(),
            command,
            input: Vec::new(),
            timeout: TOOL_TIMEOUT,
        }
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Tool {
        self.command.arg(arg);
        self
    }

    /// More arguments.
    pub fn args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// An environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Tool {
        self.command.env(key, value);
        self
    }

    /// What the program reads on standard input (nothing by default).
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Tool {
        self.input = input.into();
        self
    }

    /// `value` as JSON on standard input: how the scripts of `tests/kafka/` take their spec.
    pub fn json_stdin<T: serde::Serialize>(self, value: &T) -> Tool {
        let input = serde_json::to_vec(value).expect("the spec serializes");
        self.stdin(input)
    }

    /// How long it may run before it is killed and the test fails ([`TOOL_TIMEOUT`] by
    /// default).
    pub fn timeout(mut self, timeout: Duration) -> Tool {
        self.timeout = timeout;
        self
    }

    /// Runs it to the end and answers its standard output; panics (with its standard error)
    /// if it cannot start, exits with a failure, or outlives its timeout.
    pub fn run(self) -> String {
        self.spawn().finish()
    }

    /// [`Tool::run`], with the output decoded as JSON (the scripts print one JSON value).
    pub fn run_json<T: DeserializeOwned>(self) -> T {
        let name = self.name.clone();
        let out = self.run();
        serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!("{name} printed no valid JSON result ({e}); its output:\n{out}")
        })
    }

    /// Starts it in the background; [`RunningTool::finish`] waits for it.
    pub fn spawn(mut self) -> RunningTool {
        let describe = format!("{:?}", self.command);
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} ({describe})", self.name));
        let stdin = child.stdin.take().expect("piped stdin");
        let input = std::mem::take(&mut self.input);
        let writer = std::thread::spawn(move || feed(stdin, &input));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        RunningTool {
            name: self.name,
            describe,
            child: Some(child),
            deadline: Instant::now() + self.timeout,
            timeout: self.timeout,
            writer: Some(writer),
            stdout: Some(std::thread::spawn(move || drain(stdout))),
            stderr: Some(std::thread::spawn(move || drain(stderr))),
        }
    }
}

/// A [`Tool`] running in the background; killed if dropped before [`RunningTool::finish`].
#[derive(Debug)]
pub struct RunningTool {
    name: String,
    describe: String,
    child: Option<Child>,
    deadline: Instant,
    timeout: Duration,
    writer: Option<JoinHandle<()>>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl RunningTool {
    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().expect("try_wait").is_none())
    }

    /// Waits for it to end and answers its standard output; panics (with its standard error)
    /// if it failed or outlived its timeout.
    pub fn finish(mut self) -> String {
        let mut child = self.child.take().expect("not finished yet");
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() > self.deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        let stdout = self.stdout.take().map(join_output).unwrap_or_default();
        let stderr = self.stderr.take().map(join_output).unwrap_or_default();
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let stderr = String::from_utf8_lossy(&stderr);
        let failure = match status {
            None => format!("did not finish within {:?}", self.timeout),
            Some(status) if !status.success() => format!("failed ({status})"),
            Some(_) => return stdout,
        };
        panic!(
            "{} {failure}: {}\n--- its standard error (tail) ---\n{}\n--- its standard output (tail) ---\n{}",
            self.name,
            self.describe,
            tail(&stderr, 12 * 1024),
            tail(&stdout, 4 * 1024)
        );
    }
}

impl Drop for RunningTool {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `tests/kafka/`, where the client scripts are.
pub fn kafka_scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kafka")
}

fn feed(mut stdin: ChildStdin, input: &[u8]) {
    // A program that exits without reading all of it is judged by its exit status.
    let _ = stdin.write_all(input);
}

fn drain(mut from: impl Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = from.read_to_end(&mut bytes);
    bytes
}

fn join_output(handle: JoinHandle<Vec<u8>>) -> Vec<u8> {
    handle.join().unwrap_or_default()
}

/// At most the last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
