//! Harness for Kafdo's end-to-end tests: the real Worker on the real runtime.
//!
//! # What runs
//!
//! [`Wrangler::start`] starts `wrangler dev` (node plus two `workerd` processes) from the repo
//! root on a free loopback port, with a fresh `--persist-to` state directory, and waits until
//! `GET /health` answers. Everything it starts lives in one process group, which is killed as a
//! whole on [`Drop`], so no `workerd` outlives a test. [`Wrangler::restart`] stops the group and
//! starts a new one on the same state directory: the Durable Objects come back from their
//! SQLite files, which is how the persistence tests prove that nothing lives only in memory.
//!
//! The benchmark uses [`Launcher::NoInspector`] instead: a small node script
//! (`tests/bench/start-worker.mjs`) that calls wrangler's `unstable_startWorker` with the
//! inspector off, because `wrangler dev`'s inspector makes Durable Object calls 2-3x slower.
//!
//! # A shared instance, and who stops it
//!
//! Tests that do not restart the runtime share one instance per test binary ([`shared`]), each
//! on its own topic names ([`unique_topic`]); starting `wrangler dev` costs seconds. A `static`
//! is never dropped, so the process group has a watchdog: the group leader is a tiny `sh` that
//! starts wrangler and polls the test process's pid; when the test binary exits (or wrangler
//! dies), the shell kills its whole group. Instances owned by a test are stopped by [`Drop`]
//! at once; the watchdog only covers the shared one and crashes.
//!
//! # A panic in the Worker fails the test
//!
//! A Rust panic in the Worker does not have to show in any answer a test looks at: the guard
//! answers 500 to every request in flight, the instance is reset, and the next requests are
//! served. So the harness reads the runtime's output (`output.log` in the instance's
//! directory: every start's output, appended) for [`PANIC_SIGNS`], the lines a panic leaves
//! (`panicked at ...` from the panic hook, workerd's `RuntimeError: unreachable`, the shim's
//! `Reinitializing Wasm application`), and fails the test during which they appeared.
//!
//! - **Watches.** A [`Watch`] notes where the output stands when it is made; when it and all
//!   its clones are dropped, it flushes the output (a `GET /kafdo-e2e-flush/...` of its own,
//!   answered 404, whose line wrangler prints after everything the earlier requests printed)
//!   and fails for every panic line from its start on. Every [`Client`] that
//!   [`Wrangler::client`] makes holds one, so `let client = shared().client();` watches the
//!   whole test without another line; a test that speaks to the Worker otherwise (the SDK, a
//!   `kafdo` process) holds `let worker = shared().watch();` and uses `worker.url()`. On a
//!   shared instance (one kept in a `static`), [`Wrangler::url`] and [`Wrangler::port`] panic
//!   unless the calling thread holds a watch, so a test cannot forget it.
//! - **Shared instances.** Tests run in parallel on one instance, so a panic fails every test
//!   whose watch saw it: the one that made it among them. A panic no live watch covered (made
//!   by a request without one) is not lost: the next check of the instance reports it, as
//!   made "while no test watched". An instance a test owns also sweeps its whole output when
//!   it is dropped.
//! - **On purpose.** A test that makes the Worker panic wraps the request in
//!   [`Wrangler::expect_panic`]`(message, || ...)`: the `panicked at` entry whose message
//!   contains `message`, and the trap lines after it, written while the closure ran, are
//!   exempt; it fails if no such panic came, and any other panic still counts. Checks wait
//!   for an expectation in progress, so its panic is not blamed on a test beside it.
//! - **Already failing.** A check runs in `Drop`; if the test is already panicking it prints
//!   the panic lines instead of panicking again (which would abort the test binary).
//!
//! A failure lists the panic lines with their line numbers and keeps a copy of the output in
//! the system temp dir (the instance's directory is removed with it), printing both paths.
//!
//! # The gate
//!
//! The tests talk to a real runtime, so they run only when the crate is built with
//! `KAFDO_E2E=1` (`make test` sets it): `build.rs` turns the variable into `cfg(kafdo_e2e)`,
//! and every test that needs the runtime carries
//! `#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]`. So plain
//! `cargo test` stays hermetic (rskafka's habit) and reports them as ignored, never as passed;
//! kafdo-client, whose end-to-end tests use this harness, has the same `build.rs`. The tests
//! assume `make build` has built the Worker: [`check_built`] fails with a clear message when
//! the file that `wrangler.toml`'s `main` names is missing ([`wrangler_config`] says which
//! `wrangler.toml`).
//!
//! # The client
//!
//! [`Client`] is a blocking `ureq` agent that never turns an HTTP status into an error: tests
//! look at every status themselves. Typed helpers speak JSON or CBOR ([`Format`]) with the wire
//! types of `kafdo_types::api`, so the tests check the contract exactly as a client sees it.
//!
//! # Kafka clients
//!
//! [`Gateway`] runs the Kafka wire gateway (`kafdo-gateway`) in front of a Worker, and
//! [`Tool`] runs real Kafka clients against it (kcat, and the scripts of `tests/kafka/`:
//! confluent-kafka and kafka-python from `.venv`, kafkajs from `node_modules`, all installed by
//! `make tools`). See the `kafka` module's docs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafdo_types::api::{
    CreateTopicRequest, FetchResponse, Health, InitProducerRequest, InitProducerResponse,
    PartitionInfo, PartitionProduceRequest, PartitionProduceResponse, ProduceRequest,
    ProduceResponse, TopicConfig, TopicDescription, TopicList,
};
use kafdo_types::{ApiError, ErrorBody, ErrorCode, ProduceRecord, Record};
use serde::de::DeserializeOwned;
use serde::Serialize;

mod kafka;
pub use kafka::{
    gateway_bin, kafka_scripts, kcat_bin, venv_python, Gateway, RunningTool, Tool,
    GATEWAY_START_TIMEOUT, TOOL_TIMEOUT,
};

/// How long `wrangler dev` may take to answer `GET /health` after it is started.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one HTTP request may take: a long poll waits at most 30 s on the server. A request
/// that never answers (a Rust panic resets the wasm instance mid-request) fails the test after
/// this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(45);

/// The largest answer body the client reads: a fetch returns at most 16 MiB of records, which
/// base64 and JSON make about 22 MiB.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

/// The watchdog that leads the process group: it starts the command given as its arguments with
/// its output appended to `$KAFDO_E2E_LOG` (one file for every start of an instance, so an
/// offset in it names one moment of the instance's life), and kills the whole group (itself
/// included) as soon as the test process or the command is gone.
const WATCHDOG: &str = r#"
"$@" >>"$KAFDO_E2E_LOG" 2>&1 </dev/null &
child=$!
while kill -0 "$KAFDO_E2E_PARENT" 2>/dev/null && kill -0 "$child" 2>/dev/null; do
  sleep 0.5
done
if [ -n "$KAFDO_E2E_CLEANUP" ]; then rm -rf "$KAFDO_E2E_CLEANUP"; fi
kill -KILL 0
"#;

/// The workspace root (the directory that holds `wrangler.toml`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

/// The `wrangler.toml` the Worker is started with: `KAFDO_WRANGLER_CONFIG` if set (`make test`
/// sets it; it lets a checkout's tests run a Worker built in another checkout; a relative path
/// is taken from the repo root), else the repo root's. Wrangler resolves its `main` relative
/// to the file's directory.
pub fn wrangler_config() -> PathBuf {
    match std::env::var_os("KAFDO_WRANGLER_CONFIG") {
        Some(path) if !path.is_empty() => repo_root().join(path),
        _ => repo_root().join("wrangler.toml"),
    }
}

/// Panics with a clear message unless `make build` has produced the Worker: the file named by
/// `main` in [`wrangler_config`], and wrangler in `node_modules`.
pub fn check_built() {
    let root = repo_root();
    let config = wrangler_config();
    let text = fs::read_to_string(&config)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", config.display()));
    let main = text
        .lines()
        .map(str::trim)
        .find_map(|line| {
            let rest = line.strip_prefix("main")?.trim_start().strip_prefix('=')?;
            Some(rest.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("{} has no `main = ...` line", config.display()));
    let entry = config.parent().unwrap_or(&root).join(&main);
    assert!(
        entry.exists(),
        "the Worker is not built: {} is missing. Run `make build` first (make test does).",
        entry.display()
    );
    let wrangler = root.join("node_modules/.bin/wrangler");
    assert!(
        wrangler.exists(),
        "{} is missing: run `npm ci` (make build does).",
        wrangler.display()
    );
}

/// A free TCP port on 127.0.0.1, found by binding port 0 and letting the socket go.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A directory removed (with everything in it) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory under the system temp dir, named after `prefix`.
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// How the Worker is started.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// `wrangler dev`, as a developer runs it (with its inspector).
    WranglerDev,
    /// `tests/bench/start-worker.mjs`: wrangler's `unstable_startWorker` with the inspector off,
    /// for the benchmark.
    NoInspector,
}

/// A running Worker on a loopback port, stopped (its whole process group) on drop.
#[derive(Debug)]
pub struct Wrangler {
    launcher: Launcher,
    /// The process group leader (the watchdog shell); its pid is the group id.
    child: Mutex<Option<Child>>,
    port: u16,
    base_url: String,
    /// Holds `state/` (the Durable Objects' SQLite files, kept across restarts), `config/`
    /// (wrangler's `XDG_CONFIG_HOME`, where it writes large debug logs) and `output.log`.
    dir: TempDir,
    starts: u32,
    /// Where the current start's output begins in `output.log`.
    log_start: u64,
    /// Searches the output for Rust panics on behalf of the tests' watches.
    monitor: Arc<Monitor>,
    /// Whether the watchdog removes `dir` when the test process is gone (the shared instance,
    /// which is never dropped).
    watchdog_cleans_up: bool,
    /// Extra arguments for `wrangler dev` (such as `--var NAME:VALUE`), kept across restarts.
    extra_args: Vec<String>,
}

impl Wrangler {
    /// Starts `wrangler dev` on a free port with a fresh state directory and waits for
    /// `GET /health`.
    pub fn start() -> Wrangler {
        Wrangler::start_with(Launcher::WranglerDev)
    }

    /// Starts `wrangler dev` for an instance kept in a `static` (never dropped): when the test
    /// process is gone, the watchdog stops it and removes its directory.
    pub fn start_for_static() -> Wrangler {
        Wrangler::launch_new(Launcher::WranglerDev, true, &[])
    }

    /// [`Wrangler::start_for_static`] with extra `wrangler dev` arguments, such as
    /// `["--var", "KAFDO_DEBUG_PANIC:1"]`.
    pub fn start_for_static_with(extra_args: &[&str]) -> Wrangler {
        Wrangler::launch_new(Launcher::WranglerDev, true, extra_args)
    }

    /// Starts the Worker with the given launcher on a fresh state directory.
    pub fn start_with(launcher: Launcher) -> Wrangler {
        Wrangler::launch_new(launcher, false, &[])
    }

    fn launch_new(launcher: Launcher, watchdog_cleans_up: bool, extra_args: &[&str]) -> Wrangler {
        check_built();
        let dir = TempDir::new("kafdo-e2e");
        fs::create_dir_all(dir.path().join("state")).expect("mkdir state");
        fs::create_dir_all(dir.path().join("config")).expect("mkdir config");
        let monitor = Arc::new(Monitor::new(
            dir.path().join("output.log"),
            launcher == Launcher::WranglerDev,
            watchdog_cleans_up,
        ));
        let mut wrangler = Wrangler {
            launcher,
            child: Mutex::new(None),
            port: 0,
            base_url: String::new(),
            dir,
            starts: 0,
            log_start: 0,
            monitor,
            watchdog_cleans_up,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        wrangler.launch();
        wrangler
    }

    /// The base URL, `http://127.0.0.1:PORT`. On an instance kept in a `static` (shared by
    /// several tests) the calling thread must hold a [`Watch`] of it (see [`Wrangler::watch`]),
    /// so that no test can talk to it without its output being searched for panics.
    pub fn url(&self) -> &str {
        self.monitor.require_watch("url");
        &self.base_url
    }

    /// The port it listens on. On a shared instance, only with a [`Watch`] (as
    /// [`Wrangler::url`]).
    pub fn port(&self) -> u16 {
        self.monitor.require_watch("port");
        self.port
    }

    /// The persist directory (the Durable Objects' state).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A JSON client for this instance, holding a [`Watch`] of it: when the client and every
    /// clone of it are dropped, the output written in the meantime is searched for panics.
    pub fn client(&self) -> Client {
        self.watch().client()
    }

    /// Starts watching this instance's output for Rust panics; when the returned [`Watch`]
    /// and its clones are dropped, a panic that appeared meanwhile fails the test. For tests
    /// that speak to the Worker with something other than [`Client`] (the SDK, a `kafdo`
    /// process): `let worker = shared().watch();` and then `worker.url()`.
    pub fn watch(&self) -> Watch {
        self.monitor.watch()
    }

    /// Runs `provoke`, which makes the Worker panic on purpose, and marks the panic it
    /// provoked as expected: the `panicked at` entry whose message contains `message`, and the
    /// trap and reset lines that follow it, written while `provoke` ran (up to a flush of the
    /// output after it). Panics if no such panic appeared. Any other panic, in that window or
    /// later, still fails the tests that watched it.
    pub fn expect_panic<R>(&self, message: &str, provoke: impl FnOnce() -> R) -> R {
        self.monitor.expect_panic(message, provoke)
    }

    /// The instance's output file (every start's output, one after the other).
    pub fn log_path(&self) -> PathBuf {
        self.monitor.log.clone()
    }

    /// Stops the runtime (the whole process group) and starts it again on the same state
    /// directory, on a new free port; waits for `GET /health`. Clients made before must be
    /// remade with [`Wrangler::client`].
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// The last part of the current start's output, for failure messages.
    pub fn output_tail(&self) -> String {
        tail_of(&self.monitor.log, self.log_start, 16 * 1024)
    }

    fn launch(&mut self) {
        self.starts += 1;
        self.port = free_port();
        self.base_url = format!("http://127.0.0.1:{}", self.port);
        self.log_start = self.monitor.log_len();
        let header = format!(
            "--- kafdo-e2e: start {} of this instance, on {} ---\n",
            self.starts, self.base_url
        );
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.monitor.log)
            .and_then(|mut log| log.write_all(header.as_bytes()))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.monitor.log.display()));
        let root = repo_root();
        let config = wrangler_config();
        let state = self.state_dir();
        let port = self.port.to_string();
        let mut argv: Vec<String> = match self.launcher {
            Launcher::WranglerDev => vec![
                "node_modules/.bin/wrangler".into(),
                "dev".into(),
                "--config".into(),
                config.display().to_string(),
                "--ip".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port,
                "--inspector-port".into(),
                free_port().to_string(),
                "--persist-to".into(),
                state.display().to_string(),
                "--show-interactive-dev-session=false".into(),
            ]
            .into_iter()
            .chain(self.extra_args.iter().cloned())
            .collect(),
            Launcher::NoInspector => vec![
                "node".into(),
                "tests/bench/start-worker.mjs".into(),
                config.display().to_string(),
                port,
                state.display().to_string(),
            ],
        };
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("kafdo-e2e-watchdog")
            .args(argv.drain(..))
            .current_dir(&root)
            .env("KAFDO_E2E_LOG", &self.monitor.log)
            .env("KAFDO_E2E_PARENT", std::process::id().to_string())
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env(
                "KAFDO_E2E_CLEANUP",
                if self.watchdog_cleans_up && !keep_state() {
                    self.dir.path().as_os_str()
                } else {
                    std::ffi::OsStr::new("")
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so one signal stops node and both workerd processes.
            .process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the watchdog shell: {e}"));
        *self.child.lock().unwrap() = Some(child);
        self.wait_healthy();
        self.monitor.set_url(Some(self.base_url.clone()));
    }

    fn wait_healthy(&self) {
        let started = Instant::now();
        // The first request to a fresh instance compiles the wasm module, which takes seconds
        // on a busy machine: a short timeout would read an empty body.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(15)))
            .build()
            .into();
        let url = format!("{}/health", self.base_url);
        let mut last_answer;
        loop {
            match agent.get(&url).call() {
                Ok(mut answer) => {
                    let status = answer.status().as_u16();
                    match answer.body_mut().read_to_vec() {
                        Ok(body) => {
                            if status == 200 {
                                if let Ok(health) = serde_json::from_slice::<Health>(&body) {
                                    assert_eq!(health.status, "ok", "GET /health");
                                    return;
                                }
                            }
                            last_answer =
                                format!("HTTP {status}: {:?}", String::from_utf8_lossy(&body));
                        }
                        Err(e) => last_answer = format!("HTTP {status}, unreadable body: {e}"),
                    }
                }
                Err(e) => last_answer = format!("no answer: {e}"),
            }
            let exited = {
                let mut guard = self.child.lock().unwrap();
                let child = guard.as_mut().expect("launched");
                child.try_wait().expect("try_wait").is_some()
            };
            if exited {
                panic!(
                    "the Worker ({:?}) exited before answering GET /health; its output:\n{}",
                    self.launcher,
                    self.output_tail()
                );
            }
            if started.elapsed() > START_TIMEOUT {
                panic!(
                    "the Worker ({:?}) did not answer GET /health on {} within {:?} (last: {}); its output:\n{}",
                    self.launcher,
                    self.base_url,
                    START_TIMEOUT,
                    last_answer,
                    self.output_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the whole process group: SIGTERM, up to 5 s to exit, then SIGKILL.
    fn stop(&self) {
        self.monitor.set_url(None);
        let Some(mut child) = self.child.lock().unwrap().take() else {
            return;
        };
        let pgid = child.id() as i32;
        signal_group(pgid, "TERM");
        if !wait_group_gone(pgid, Duration::from_secs(5)) {
            signal_group(pgid, "KILL");
            wait_group_gone(pgid, Duration::from_secs(5));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Wrangler {
    /// Searches the whole output for a panic no watch reported (one before the first client
    /// was made, during a restart, or by a client made with [`Client::new`]), stops the
    /// group, and then fails the test that owned the instance if there was one.
    fn drop(&mut self) {
        let report = self.monitor.sweep();
        self.stop();
        if let Some(report) = report {
            fail_or_print(&report);
        }
    }
}

/// `KAFDO_E2E_KEEP=1` keeps the shared instance's directory (state and output) for a look
/// after the run.
fn keep_state() -> bool {
    std::env::var("KAFDO_E2E_KEEP").is_ok_and(|v| v == "1")
}

fn signal_group(pgid: i32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether a live (not zombie) process is left in the group, read from `/proc`. Zombies do not
/// count: the reparented `workerd` processes may never be reaped in a container whose init does
/// not reap, and a zombie holds no port and no file.
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    for entry in entries.flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: parse after the last ')'.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        // After the name: state, ppid, pgrp.
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            return true;
        }
    }
    false
}

fn wait_group_gone(pgid: i32, timeout: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if !group_alive(pgid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !group_alive(pgid)
}

/// At most the last `max_bytes` of `path` from offset `from` on.
fn tail_of(path: &Path, from: u64, max_bytes: usize) -> String {
    let mut text = String::new();
    let bytes = read_from(path, from);
    if !bytes.is_empty() {
        let start = bytes.len().saturating_sub(max_bytes);
        text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    }
    if text.is_empty() {
        format!("(no output in {})", path.display())
    } else {
        text
    }
}

/// The strings that mark a Rust panic in the Worker's output, found by provoking one (the
/// robustness test's deliberate panic) and reading what `wrangler dev` printed:
///
/// - `panicked at `: the panic hook (`console_error_panic_hook`) logs Rust's
///   `panicked at FILE:LINE:COL:` and the message on the lines after it. The one that names
///   the panic.
/// - `RuntimeError: unreachable`: workerd's report of the trap the panic ends in (wasm32
///   panics abort: `Critical RuntimeError: unreachable`, then `Uncaught RuntimeError:
///   unreachable`); also all that is left of an abort whose hook logged nothing.
/// - `Reinitializing Wasm application`: the worker-build shim resetting the instance after the
///   abort.
/// - `Cannot invoke closure from previous WASM instance`: wasm-bindgen's error when a callback
///   of an instance that aborted is called after the reset.
///
/// They are searched in every line with its ANSI colours removed.
pub const PANIC_SIGNS: [&str; 4] = [
    "panicked at ",
    "RuntimeError: unreachable",
    "Reinitializing Wasm application",
    "Cannot invoke closure from previous WASM instance",
];

/// How long a watch's check waits for an [`Wrangler::expect_panic`] in progress to mark the
/// panic it provoked, so that the panic is not blamed on a test running beside it.
const EXPECTATION_WAIT: Duration = Duration::from_secs(60);

/// How long a flush waits for its own request to appear in the output.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// After its request's line appeared, how long a flush still waits: workerd's console output
/// reaches the log through another pipe than wrangler's request lines.
const FLUSH_SETTLE: Duration = Duration::from_millis(100);

/// The most panic lines one failure message lists.
const MAX_SIGNS_SHOWN: usize = 24;

/// One line of the output that shows a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sign {
    /// Where the line starts in the output file.
    offset: u64,
    /// Its line number, from 1.
    line: usize,
    /// The line, without ANSI colours, trimmed.
    text: String,
    /// For a `panicked at` line, the panic's message: the entry's next lines up to `Stack:`.
    message: Option<String>,
}

impl Sign {
    fn describe(&self) -> String {
        match &self.message {
            Some(message) if !message.is_empty() => {
                format!("line {}: {} {message}", self.line, self.text)
            }
            _ => format!("line {}: {}", self.line, self.text),
        }
    }
}

/// Every line of `log` that holds one of [`PANIC_SIGNS`]. Only complete lines count: the rest
/// is still being written.
fn find_signs(log: &[u8]) -> Vec<Sign> {
    let Some(end) = log.iter().rposition(|&b| b == b'\n') else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let mut offset = 0u64;
    for raw in log[..end].split(|&b| b == b'\n') {
        lines.push((offset, strip_ansi(&String::from_utf8_lossy(raw))));
        offset += raw.len() as u64 + 1;
    }
    let mut signs = Vec::new();
    for (i, (offset, text)) in lines.iter().enumerate() {
        let Some(sign) = PANIC_SIGNS.iter().find(|sign| text.contains(*sign)) else {
            continue;
        };
        // The message is on the entry's own lines (empty or indented), before its stack.
        let message = (*sign == PANIC_SIGNS[0]).then(|| {
            lines[i + 1..]
                .iter()
                .map(|(_, line)| line)
                .take_while(|line| line.is_empty() || line.starts_with(char::is_whitespace))
                .map(|line| line.trim())
                .take_while(|line| *line != "Stack:")
                .filter(|line| !line.is_empty())
                .take(8)
                .collect::<Vec<_>>()
                .join(" / ")
        });
        signs.push(Sign {
            offset: *offset,
            line: i + 1,
            text: text.trim().to_string(),
            message,
        });
    }
    signs
}

/// `text` without ANSI escape sequences (wrangler colours its `[ERROR]` lines).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.clone().next() == Some('[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// The offsets of the panic that `message` names among `signs` from `start` on: each
/// `panicked at` line whose message (or location) contains it, and the trap and reset lines
/// after it, up to the next `panicked at` line.
fn provoked_by(signs: &[Sign], start: u64, message: &str) -> Vec<u64> {
    let mut provoked = Vec::new();
    let mut inside = false;
    for sign in signs.iter().filter(|sign| sign.offset >= start) {
        if let Some(text) = &sign.message {
            inside = text.contains(message) || sign.text.contains(message);
        }
        if inside {
            provoked.push(sign.offset);
        }
    }
    provoked
}

/// The bytes of `path` from offset `from` on (none if it cannot be read).
fn read_from(path: &Path, from: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(mut file) = fs::File::open(path) {
        if file.seek(SeekFrom::Start(from)).is_ok() {
            let _ = file.read_to_end(&mut bytes);
        }
    }
    bytes
}

/// Fails the test with `report`, or, if the test is already failing (a check in `Drop`
/// during unwinding), prints it: a second panic would abort the whole test binary.
fn fail_or_print(report: &str) {
    if std::thread::panicking() {
        eprintln!("{report}");
    } else {
        panic!("{report}");
    }
}

/// Searches one instance's output for panics on behalf of the watches of the tests using it.
#[derive(Debug)]
struct Monitor {
    /// The output of every start of the instance, appended (`output.log`).
    log: PathBuf,
    /// Whether the runtime logs each request (`wrangler dev` does; the benchmark's launcher
    /// runs at log level `warn`), so that a flush can wait for its own request's line.
    logs_requests: bool,
    /// Whether several tests use the instance at once (one kept in a `static`).
    shared: bool,
    /// Where a failure keeps its copy of the output (the system temp dir).
    copies: PathBuf,
    state: Mutex<MonitorState>,
    /// Signalled when an expectation closes.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct MonitorState {
    /// The instance's URL while it runs.
    url: Option<String>,
    next_watch: u64,
    /// The live watches: where each started in the output, and the thread that made it.
    watches: BTreeMap<u64, (u64, ThreadId)>,
    /// [`Wrangler::expect_panic`] calls in progress.
    open_expectations: usize,
    /// The offsets of the signs of panics provoked on purpose.
    expected: BTreeSet<u64>,
    /// The offsets of the signs some check has already failed a test for.
    reported: BTreeSet<u64>,
}

impl Monitor {
    fn new(log: PathBuf, logs_requests: bool, shared: bool) -> Monitor {
        Monitor {
            log,
            logs_requests,
            shared,
            copies: std::env::temp_dir(),
            state: Mutex::new(MonitorState::default()),
            changed: Condvar::new(),
        }
    }

    /// The state; a lock poisoned by a failing test is still good (nothing panics holding it,
    /// and a check in `Drop` must not panic again).
    fn lock(&self) -> MutexGuard<'_, MonitorState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    fn set_url(&self, url: Option<String>) {
        self.lock().url = url;
    }

    /// Panics unless the calling thread holds a watch of a shared instance.
    fn require_watch(&self, what: &str) {
        if !self.shared {
            return;
        }
        let me = std::thread::current().id();
        if self
            .lock()
            .watches
            .values()
            .any(|(_, thread)| *thread == me)
        {
            return;
        }
        panic!(
            "Wrangler::{what}() of a shared instance needs a watch held by this thread for the \
             whole test: `let worker = shared().watch();`, then `worker.url()` (or use \
             `shared().client()`, which holds one), so that the harness searches the Worker's \
             output for panics when the test ends"
        );
    }

    fn watch(self: &Arc<Self>) -> Watch {
        let mut state = self.lock();
        let id = state.next_watch;
        state.next_watch += 1;
        let start = self.log_len();
        state
            .watches
            .insert(id, (start, std::thread::current().id()));
        Watch(Arc::new(WatchInner {
            monitor: Arc::clone(self),
            id,
            start,
        }))
    }

    /// Waits until what the runtime printed for the requests answered so far is in the log:
    /// sends a request of its own (`GET /kafdo-e2e-flush/...`, a 404) and waits for wrangler's
    /// line about it.
    fn flush(&self) {
        static FLUSHES: AtomicU64 = AtomicU64::new(0);
        let Some(url) = self.lock().url.clone() else {
            return;
        };
        if !self.logs_requests {
            std::thread::sleep(Duration::from_millis(500));
            return;
        }
        let marker = format!(
            "/kafdo-e2e-flush/{}-{}",
            std::process::id(),
            FLUSHES.fetch_add(1, Ordering::Relaxed)
        );
        let from = self.log_len();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        if agent.get(format!("{url}{marker}")).call().is_err() {
            // The instance is gone or going: nothing more will come.
            return;
        }
        let needle = format!("{marker} ");
        let started = Instant::now();
        while started.elapsed() < FLUSH_TIMEOUT {
            let text = read_from(&self.log, from);
            if String::from_utf8_lossy(&text).contains(&needle) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(FLUSH_SETTLE);
    }

    /// The check when a watch ends (`watch` is its id and `start` where it started), or, with
    /// `None` and `u64::MAX`, the sweep of an instance being dropped. Fails the watch for every
    /// panic from its start on that was not provoked on purpose, and for every panic before it
    /// that no watch saw (no watch still alive started before it, so none ever will). Returns
    /// the failure message, if any.
    fn finish(&self, watch: Option<u64>, start: u64) -> Option<String> {
        self.flush();
        let mut state = self.lock();
        let waited = Instant::now();
        while state.open_expectations > 0 && waited.elapsed() < EXPECTATION_WAIT {
            state = self
                .changed
                .wait_timeout(state, EXPECTATION_WAIT.saturating_sub(waited.elapsed()))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if let Some(id) = watch {
            state.watches.remove(&id);
        }
        let oldest_watch = state.watches.values().map(|(s, _)| *s).min();
        let unwatched_before = oldest_watch.unwrap_or(u64::MAX).min(start);
        let (mut during, mut unwatched) = (Vec::new(), Vec::new());
        for sign in find_signs(&read_from(&self.log, 0)) {
            if state.expected.contains(&sign.offset) {
                continue;
            }
            if watch.is_some() && sign.offset >= start {
                during.push(sign);
            } else if sign.offset < unwatched_before && !state.reported.contains(&sign.offset) {
                unwatched.push(sign);
            }
        }
        if during.is_empty() && unwatched.is_empty() {
            return None;
        }
        state
            .reported
            .extend(during.iter().chain(&unwatched).map(|sign| sign.offset));
        drop(state);
        Some(self.report(&during, &unwatched))
    }

    /// The failure message for panics found; keeps a copy of the output, whose directory
    /// goes with the instance.
    fn report(&self, during: &[Sign], unwatched: &[Sign]) -> String {
        static COPIES: AtomicU64 = AtomicU64::new(0);
        let mut text = String::from(
            "the Worker panicked: a Rust panic in the Worker is a bug even when every answer \
             the test checked was right (the guard answers 500 and the instance is reset).\n",
        );
        let mut list = |title: &str, signs: &[Sign]| {
            if signs.is_empty() {
                return;
            }
            let _ = writeln!(text, "{title}:");
            for sign in signs.iter().take(MAX_SIGNS_SHOWN) {
                let _ = writeln!(text, "    {}", sign.describe());
            }
            if signs.len() > MAX_SIGNS_SHOWN {
                let _ = writeln!(text, "    ... and {} more", signs.len() - MAX_SIGNS_SHOWN);
            }
        };
        list("  while this test watched the instance", during);
        list(
            "  before, while no test watched the instance (the test that made it may have passed)",
            unwatched,
        );
        if self.shared && !during.is_empty() {
            text.push_str(
                "  Tests share this instance and run in parallel: the panic is this test's or one \
                 that ran at the same time (each of them fails).\n",
            );
        }
        text.push_str(
            "  A test that makes the Worker panic on purpose wraps the request in \
             `Wrangler::expect_panic(message, || ...)`.\n",
        );
        let copy = self.copies.join(format!(
            "kafdo-e2e-panic-{}-{}.log",
            std::process::id(),
            COPIES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = match fs::copy(&self.log, &copy) {
            Ok(_) => writeln!(
                text,
                "  The Worker's output: {} (a copy, kept after the run; the instance's own is {})",
                copy.display(),
                self.log.display()
            ),
            Err(e) => writeln!(
                text,
                "  The Worker's output: {} (no copy kept: {e})",
                self.log.display()
            ),
        };
        text
    }

    /// [`Wrangler::expect_panic`].
    fn expect_panic<R>(&self, message: &str, provoke: impl FnOnce() -> R) -> R {
        /// Closes the expectation however `provoke` ends.
        struct Open<'a>(&'a Monitor);
        impl Drop for Open<'_> {
            fn drop(&mut self) {
                self.0.lock().open_expectations -= 1;
                self.0.changed.notify_all();
            }
        }
        let start = {
            let mut state = self.lock();
            state.open_expectations += 1;
            self.log_len()
        };
        let _open = Open(self);
        let result = provoke();
        self.flush();
        let started = Instant::now();
        loop {
            let provoked = provoked_by(&find_signs(&read_from(&self.log, 0)), start, message);
            if !provoked.is_empty() {
                self.lock().expected.extend(provoked);
                return result;
            }
            assert!(
                started.elapsed() < FLUSH_TIMEOUT,
                "expected the Worker to panic with a message containing {message:?}, but no \
                 such panic appeared in its output ({}, from offset {start})",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The sweep of an instance being dropped: every panic no watch reported.
    fn sweep(&self) -> Option<String> {
        self.finish(None, u64::MAX)
    }
}

/// A test's watch over a Worker instance's output: made by [`Wrangler::watch`] (and held by
/// every [`Client`] that [`Wrangler::client`] makes); when it and all its clones are dropped,
/// the output is searched for [`PANIC_SIGNS`] written since it was made, and any panic not
/// provoked on purpose ([`Wrangler::expect_panic`]) fails the test, with the panic's lines and
/// the log's path. If the test is already failing, the panics are printed instead.
#[derive(Clone, Debug)]
pub struct Watch(Arc<WatchInner>);

#[derive(Debug)]
struct WatchInner {
    monitor: Arc<Monitor>,
    id: u64,
    /// Where the output stood when the watch was made.
    start: u64,
}

impl Watch {
    /// The instance's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.0
            .monitor
            .lock()
            .url
            .clone()
            .expect("the watched Worker is not running")
    }

    /// A JSON client of the instance that holds this watch.
    pub fn client(&self) -> Client {
        Client {
            _watch: Some(self.clone()),
            ..Client::new(&self.url())
        }
    }
}

impl Drop for WatchInner {
    fn drop(&mut self) {
        if let Some(report) = self.monitor.finish(Some(self.id), self.start) {
            fail_or_print(&report);
        }
    }
}

/// The `wrangler dev` instance shared by the tests of one test binary, started on first use.
/// A start that failed fails every test that asks, with the same message. Tests use it through
/// `shared().client()` or `shared().watch()`, which watch its output for panics (see the
/// module docs).
pub fn shared() -> &'static Wrangler {
    static SHARED: OnceLock<Result<Wrangler, String>> = OnceLock::new();
    let started = SHARED.get_or_init(|| {
        // Never dropped: the watchdog removes its directory when the test process is gone.
        std::panic::catch_unwind(Wrangler::start_for_static).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the shared Worker did not start".into())
        })
    });
    match started {
        Ok(wrangler) => wrangler,
        Err(message) => panic!("{message}"),
    }
}

/// A topic name unique within this test process: `prefix` plus a counter.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A seeded random generator; the seed is printed, and `KAFDO_E2E_SEED` replays it.
pub fn rng(test: &str) -> fastrand::Rng {
    let seed = std::env::var("KAFDO_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("{test}: KAFDO_E2E_SEED={seed}");
    fastrand::Rng::with_seed(seed)
}

/// `len` random bytes.
pub fn random_bytes(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    bytes
}

/// A body encoding of the API.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON (binary fields as standard base64).
    Json,
    /// CBOR (binary fields as byte strings).
    Cbor,
}

impl Format {
    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Cbor => "application/cbor",
        }
    }

    /// Encodes a body.
    pub fn encode<T: Serialize>(self, value: &T) -> Vec<u8> {
        match self {
            Format::Json => serde_json::to_vec(value).expect("serialize JSON"),
            Format::Cbor => {
                let mut out = Vec::new();
                ciborium::into_writer(value, &mut out).expect("serialize CBOR");
                out
            }
        }
    }
}

/// An HTTP answer, whatever its status.
#[derive(Clone, Debug)]
pub struct Reply {
    /// What was asked, for failure messages (`POST /v1/topics`).
    pub request: String,
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, or empty.
    pub content_type: String,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body's format, from its `Content-Type`.
    pub fn format(&self) -> Format {
        if self.content_type.starts_with("application/cbor") {
            Format::Cbor
        } else {
            Format::Json
        }
    }

    /// The body for a failure message: text, or hex for CBOR.
    pub fn describe_body(&self) -> String {
        let shown = &self.body[..self.body.len().min(2048)];
        match self.format() {
            Format::Json => String::from_utf8_lossy(shown).into_owned(),
            Format::Cbor => shown.iter().fold(String::from("cbor "), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            }),
        }
    }

    /// Decodes the body (JSON or CBOR by its `Content-Type`); panics on a body that does not
    /// match `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> T {
        self.try_decode().unwrap_or_else(|e| {
            panic!(
                "{}: cannot decode the {} answer as {}: {e}; body: {}",
                self.request,
                self.status,
                std::any::type_name::<T>(),
                self.describe_body()
            )
        })
    }

    /// Decodes the body (JSON or CBOR by its `Content-Type`), or says why it does not match `T`.
    pub fn try_decode<T: DeserializeOwned>(&self) -> Result<T, String> {
        match self.format() {
            Format::Json => serde_json::from_slice(&self.body).map_err(|e| e.to_string()),
            Format::Cbor => ciborium::from_reader(&self.body[..]).map_err(|e| e.to_string()),
        }
    }

    /// Asserts the status and decodes the body.
    pub fn expect<T: DeserializeOwned>(&self, status: u16) -> T {
        self.expect_status(status);
        self.decode()
    }

    /// Asserts the status.
    pub fn expect_status(&self, status: u16) {
        assert_eq!(
            self.status,
            status,
            "{}: expected HTTP {status}, got {}; body: {}",
            self.request,
            self.status,
            self.describe_body()
        );
    }

    /// The error of an error answer (`{"error": {"code", "message"}}`).
    pub fn error(&self) -> ApiError {
        self.decode::<ErrorBody>().error
    }

    /// Asserts an error answer: the HTTP status and the code in the body.
    pub fn expect_error(&self, status: u16, code: ErrorCode) -> ApiError {
        self.expect_status(status);
        let error = self.error();
        assert_eq!(
            error.code, code,
            "{}: expected error {code}, got {error}",
            self.request
        );
        error
    }

    /// Asserts an error answer with the HTTP status that goes with `code`.
    pub fn expect_code(&self, code: ErrorCode) -> ApiError {
        self.expect_error(code.http_status(), code)
    }
}

/// Query parameters of a fetch.
#[derive(Clone, Debug, Default)]
pub struct FetchParams {
    /// `offset` (required by the server? the tests always send it).
    pub offset: i64,
    /// `max_records`.
    pub max_records: Option<u32>,
    /// `max_bytes`.
    pub max_bytes: Option<u32>,
    /// `isolation` (`read_committed` or `read_uncommitted`).
    pub isolation: Option<&'static str>,
    /// `wait_ms`.
    pub wait_ms: Option<u32>,
}

impl FetchParams {
    /// A fetch from `offset` with the server's defaults.
    pub fn at(offset: i64) -> FetchParams {
        FetchParams {
            offset,
            ..FetchParams::default()
        }
    }

    /// The query string, `?offset=...`.
    pub fn query(&self) -> String {
        let mut q = format!("?offset={}", self.offset);
        if let Some(n) = self.max_records {
            let _ = write!(q, "&max_records={n}");
        }
        if let Some(n) = self.max_bytes {
            let _ = write!(q, "&max_bytes={n}");
        }
        if let Some(i) = self.isolation {
            let _ = write!(q, "&isolation={i}");
        }
        if let Some(n) = self.wait_ms {
            let _ = write!(q, "&wait_ms={n}");
        }
        q
    }
}

/// A blocking client of API v1 that hands back every status as it is.
#[derive(Clone, Debug)]
pub struct Client {
    agent: ureq::Agent,
    base_url: String,
    format: Format,
    /// The watch of the instance's output this client holds (none for [`Client::new`]), kept
    /// for its `Drop`: the check runs when the last clone of the client is gone.
    _watch: Option<Watch>,
}

impl Client {
    /// A JSON client of the Worker at `base_url`. It holds no [`Watch`]: tests make clients
    /// with [`Wrangler::client`] or [`Watch::client`].
    pub fn new(base_url: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_idle_connections_per_host(64)
            .build()
            .into();
        Client {
            agent,
            base_url: base_url.trim_end_matches('/').to_string(),
            format: Format::Json,
            _watch: None,
        }
    }

    /// The same client speaking `format` in its typed helpers.
    pub fn with_format(&self, format: Format) -> Client {
        Client {
            format,
            ..self.clone()
        }
    }

    /// The format of the typed helpers.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Sends one request; `body` is sent as is.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let request_name = format!("{method} {path}");
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let answer = match body {
            Some(bytes) => self
                .agent
                .run(builder.body(bytes.to_vec()).expect("a valid request")),
            None => self.agent.run(builder.body(()).expect("a valid request")),
        };
        let mut answer = answer.unwrap_or_else(|e| panic!("{request_name}: no HTTP answer: {e}"));
        let status = answer.status().as_u16();
        let content_type = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let retry_after = answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("{request_name}: cannot read the answer body: {e}"));
        Reply {
            request: request_name,
            status,
            content_type,
            retry_after,
            body,
        }
    }

    /// `GET path`, accepting this client's format.
    pub fn get(&self, path: &str) -> Reply {
        let reply = self.request("GET", path, &[("accept", self.format.media_type())], None);
        self.check_format(&reply);
        reply
    }

    /// A body answered to a request that accepts only this client's format must be in it
    /// (errors included): a CBOR client must not be answered JSON.
    fn check_format(&self, reply: &Reply) {
        if !reply.body.is_empty() {
            assert_eq!(
                reply.format(),
                self.format,
                "{}: asked for {}, answered {:?}",
                reply.request,
                self.format.media_type(),
                reply.content_type
            );
        }
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Reply {
        self.request(
            "DELETE",
            path,
            &[("accept", self.format.media_type())],
            None,
        )
    }

    /// `POST path` with `value` encoded in this client's format, plus extra headers.
    pub fn post<T: Serialize>(&self, path: &str, value: &T, headers: &[(&str, &str)]) -> Reply {
        let body = self.format.encode(value);
        let reply = self.post_raw(path, self.format, &body, headers);
        self.check_format(&reply);
        reply
    }

    /// `POST path` with a body sent byte for byte, labelled as `format`.
    pub fn post_raw(
        &self,
        path: &str,
        format: Format,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut all = vec![
            ("content-type", format.media_type()),
            ("accept", format.media_type()),
        ];
        all.extend_from_slice(headers);
        self.request("POST", path, &all, Some(body))
    }

    /// `GET /health`.
    pub fn health(&self) -> Health {
        self.get("/health").expect(200)
    }

    /// `GET /v1/topics`; asserts 200.
    pub fn list_topics(&self) -> TopicList {
        self.get("/v1/topics").expect(200)
    }

    /// `POST /v1/topics` with the default config; asserts 201.
    pub fn create_topic(&self, name: &str, partitions: i32) -> TopicDescription {
        self.create_topic_with(name, partitions, TopicConfig::default())
            .expect(201)
    }

    /// `POST /v1/topics`, whatever the answer.
    pub fn create_topic_with(&self, name: &str, partitions: i32, config: TopicConfig) -> Reply {
        self.post(
            "/v1/topics",
            &CreateTopicRequest {
                name: name.into(),
                partitions,
                config,
            },
            &[],
        )
    }

    /// `POST /v1/topics/{t}/records`, whatever the answer.
    pub fn produce_reply(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.post(
            &format!("/v1/topics/{topic}/records"),
            &ProduceRequest { records },
            headers,
        )
    }

    /// `POST /v1/topics/{t}/records`; asserts 200 and one offset per record.
    pub fn produce(&self, topic: &str, records: Vec<ProduceRecord>) -> ProduceResponse {
        let count = records.len();
        let answer: ProduceResponse = self.produce_reply(topic, records, &[]).expect(200);
        assert_eq!(answer.offsets.len(), count, "one offset per record");
        answer
    }

    /// `POST /v1/topics/{t}/partitions/{p}/records`, whatever the answer.
    pub fn produce_partition_reply(
        &self,
        topic: &str,
        partition: i32,
        request: &PartitionProduceRequest,
    ) -> Reply {
        self.post(
            &format!("/v1/topics/{topic}/partitions/{partition}/records"),
            request,
            &[],
        )
    }

    /// `POST /v1/topics/{t}/partitions/{p}/records` without a producer id; asserts 200.
    pub fn produce_partition(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<ProduceRecord>,
    ) -> PartitionProduceResponse {
        let count = records.len() as i64;
        let answer: PartitionProduceResponse = self
            .produce_partition_reply(
                topic,
                partition,
                &PartitionProduceRequest {
                    records,
                    ..PartitionProduceRequest::default()
                },
            )
            .expect(200);
        assert_eq!(
            answer.last_offset - answer.base_offset + 1,
            count,
            "dense offsets for the batch: {answer:?}"
        );
        answer
    }

    /// `GET /v1/topics/{t}/partitions/{p}/records`, whatever the answer.
    pub fn fetch_reply(&self, topic: &str, partition: i32, params: &FetchParams) -> Reply {
        self.get(&format!(
            "/v1/topics/{topic}/partitions/{partition}/records{}",
            params.query()
        ))
    }

    /// A fetch; asserts 200.
    pub fn fetch(&self, topic: &str, partition: i32, params: &FetchParams) -> FetchResponse {
        self.fetch_reply(topic, partition, params).expect(200)
    }

    /// Every record of a partition from its log start offset up to its high watermark, fetched
    /// page by page.
    pub fn read_all(&self, topic: &str, partition: i32) -> Vec<Record> {
        let info = self.partition_info(topic, partition);
        let high_watermark = info.high_watermark;
        let mut records = Vec::new();
        let mut offset = info.log_start_offset;
        while offset < high_watermark {
            let page = self.fetch(topic, partition, &FetchParams::at(offset));
            assert!(
                page.next_offset > offset,
                "fetch at {offset} of {topic}/{partition} made no progress: {:?}",
                (page.next_offset, page.high_watermark, page.records.len())
            );
            offset = page.next_offset;
            records.extend(page.records);
        }
        records
    }

    /// `GET /v1/topics/{t}/partitions/{p}`; asserts 200.
    pub fn partition_info(&self, topic: &str, partition: i32) -> PartitionInfo {
        self.get(&format!("/v1/topics/{topic}/partitions/{partition}"))
            .expect(200)
    }

    /// `POST /v1/producers` for an idempotent producer; asserts 200.
    pub fn init_producer(&self) -> InitProducerResponse {
        self.post("/v1/producers", &InitProducerRequest::default(), &[])
            .expect(200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_query_has_only_what_is_set() {
        assert_eq!(FetchParams::at(7).query(), "?offset=7");
        let all = FetchParams {
            offset: -1,
            max_records: Some(2),
            max_bytes: Some(3),
            isolation: Some("read_uncommitted"),
            wait_ms: Some(4),
        };
        assert_eq!(
            all.query(),
            "?offset=-1&max_records=2&max_bytes=3&isolation=read_uncommitted&wait_ms=4"
        );
    }

    #[test]
    fn errors_decode_from_json_and_cbor() {
        let body = ErrorBody {
            error: ApiError::new(ErrorCode::MessageTooLarge, "too big"),
        };
        for format in [Format::Json, Format::Cbor] {
            let reply = Reply {
                request: "POST /x".into(),
                status: 413,
                content_type: format.media_type().into(),
                retry_after: None,
                body: format.encode(&body),
            };
            assert_eq!(reply.format(), format);
            assert_eq!(reply.expect_code(ErrorCode::MessageTooLarge), body.error);
        }
    }

    #[test]
    #[should_panic(expected = "expected error UNKNOWN_TOPIC_OR_PARTITION")]
    fn a_wrong_error_code_fails() {
        let reply = Reply {
            request: "GET /x".into(),
            status: 404,
            content_type: "application/json".into(),
            retry_after: None,
            body: br#"{"error":{"code":"INVALID_REQUEST","message":"no route"}}"#.to_vec(),
        };
        reply.expect_error(404, ErrorCode::UnknownTopicOrPartition);
    }

    #[test]
    fn a_stopped_process_group_is_gone() {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("sleep 30 & sleep 30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        assert!(group_alive(pgid));
        signal_group(pgid, "KILL");
        let _ = child.wait();
        assert!(wait_group_gone(pgid, Duration::from_secs(5)));
    }

    /// What `wrangler dev` printed for the robustness test's deliberate panic (stacks cut).
    const PANIC_OUTPUT: &str = "[wrangler:info] POST /v1/topics 201 Created (51ms)\n\
        \u{1b}[31m\u{2718} \u{1b}[41;31m[\u{1b}[41;97mERROR\u{1b}[41;31m]\u{1b}[0m \u{1b}[1mpanicked at worker/src/objects/bench.rs:155:36:\u{1b}[0m\n\
        \n\
        \x20 deliberate panic (KAFDO_DEBUG_PANIC)\n\
        \x20 \n\
        \x20 Stack:\n\
        \x20 \n\
        \x20 Error\n\
        \x20     at __wbg_new_bb74001155cb8ca8 (file:///work/base/worker/build/index.js:1:19354)\n\
        \n\
        \u{1b}[31m\u{2718} \u{1b}[41;31m[\u{1b}[41;97mERROR\u{1b}[41;31m]\u{1b}[0m \u{1b}[1mCritical RuntimeError: unreachable\u{1b}[0m\n\
        \n\
        \x20     at mt (file:///work/base/worker/build/index.js:1:25091)\n\
        Reinitializing Wasm application\n\
        \u{1b}[31m\u{2718} \u{1b}[41;31m[\u{1b}[41;97mERROR\u{1b}[41;31m]\u{1b}[0m \u{1b}[1mUncaught RuntimeError: unreachable\u{1b}[0m\n\
        \n\
        [wrangler:info] POST /bench/bare-append/666 500 Internal Server Error (18ms)\n";

    /// A monitor over a fresh output file, as for an instance that is not running (no flush).
    fn new_monitor(shared: bool) -> (TempDir, Arc<Monitor>) {
        let dir = TempDir::new("kafdo-e2e-unit");
        let log = dir.path().join("output.log");
        fs::write(&log, "").unwrap();
        let monitor = Monitor {
            copies: dir.path().to_path_buf(),
            ..Monitor::new(log, true, shared)
        };
        (dir, Arc::new(monitor))
    }

    fn append(monitor: &Monitor, text: &str) {
        let mut log = fs::OpenOptions::new()
            .append(true)
            .open(&monitor.log)
            .unwrap();
        log.write_all(text.as_bytes()).unwrap();
    }

    /// Drops `watch` and answers the message of the panic its check raised, if any.
    fn check(watch: Watch) -> Option<String> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(watch)))
            .err()
            .map(|panic| panic.downcast_ref::<String>().cloned().unwrap_or_default())
    }

    #[test]
    fn the_signs_of_a_panic_are_found_in_wranglers_output() {
        let signs = find_signs(PANIC_OUTPUT.as_bytes());
        let texts: Vec<&str> = signs.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "\u{2718} [ERROR] panicked at worker/src/objects/bench.rs:155:36:",
                "\u{2718} [ERROR] Critical RuntimeError: unreachable",
                "Reinitializing Wasm application",
                "\u{2718} [ERROR] Uncaught RuntimeError: unreachable",
            ]
        );
        assert_eq!(
            signs[0].message.as_deref(),
            Some("deliberate panic (KAFDO_DEBUG_PANIC)")
        );
        assert_eq!(
            signs.iter().map(|s| s.line).collect::<Vec<_>>(),
            [2, 11, 14, 15]
        );
        assert_eq!(signs[1].message, None);
        // A line still being written is not read yet.
        assert!(find_signs(b"[wrangler:info] ok\npanicked at x.rs:1:1:").is_empty());
        assert!(find_signs(b"[wrangler:info] GET /health 200 OK (3ms)\n").is_empty());
    }

    #[test]
    fn a_panic_fails_the_watches_that_saw_it_and_only_them() {
        let (_dir, monitor) = new_monitor(true);
        let early = monitor.watch();
        append(&monitor, "[wrangler:info] GET /health 200 OK (3ms)\n");
        assert_eq!(check(monitor.watch()), None, "a clean output passes");
        let during = monitor.watch();
        append(&monitor, PANIC_OUTPUT);
        let after = monitor.watch();
        assert_eq!(check(after), None, "made after the panic: not its test");
        let report = check(during).expect("the panic fails the test that watched it");
        assert!(
            report.contains("while this test watched the instance"),
            "{report}"
        );
        assert!(
            report.contains(
                "line 3: \u{2718} [ERROR] panicked at worker/src/objects/bench.rs:155:36: \
                 deliberate panic (KAFDO_DEBUG_PANIC)"
            ),
            "{report}"
        );
        assert!(
            report.contains("Uncaught RuntimeError: unreachable"),
            "{report}"
        );
        assert!(report.contains("run in parallel"), "{report}");
        let copy = report
            .split("The Worker's output: ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .expect("the copy's path");
        assert_eq!(
            fs::read_to_string(copy).unwrap(),
            fs::read_to_string(&monitor.log).unwrap()
        );
        // A test running at the same time fails too; the panic was reported, so it is not
        // blamed on later tests as unwatched.
        assert!(check(early).is_some());
        assert_eq!(check(monitor.watch()), None);
        assert_eq!(monitor.sweep(), None);
    }

    #[test]
    fn a_panic_no_watch_saw_fails_the_next_check() {
        let (_dir, monitor) = new_monitor(true);
        append(&monitor, PANIC_OUTPUT);
        let report = check(monitor.watch()).expect("an unwatched panic is not lost");
        assert!(
            report.contains("while no test watched the instance"),
            "{report}"
        );
        assert!(!report.contains("while this test watched"), "{report}");
        assert_eq!(check(monitor.watch()), None, "reported once");

        // A panic after a live watch began is that watch's to judge: a later watch does not
        // report it as unwatched.
        let (_dir, other) = new_monitor(true);
        let first = other.watch();
        append(&other, PANIC_OUTPUT);
        assert_eq!(check(other.watch()), None);
        assert!(check(first).is_some());

        // The sweep of an owned instance being dropped finds what no watch reported.
        let (_dir, owned) = new_monitor(false);
        append(&owned, PANIC_OUTPUT);
        let report = owned.sweep().expect("the sweep finds it");
        assert!(report.contains("while no test watched"), "{report}");
        assert_eq!(owned.sweep(), None);
    }

    #[test]
    fn an_expected_panic_is_exempt_and_nothing_else() {
        let (_dir, monitor) = new_monitor(true);
        let watch = monitor.watch();
        let answer = monitor.expect_panic("deliberate panic", || {
            append(&monitor, PANIC_OUTPUT);
            42
        });
        assert_eq!(answer, 42);
        assert_eq!(
            check(watch),
            None,
            "the provoked panic and its traps are exempt"
        );

        // Another panic in the same window is not.
        let watch = monitor.watch();
        monitor.expect_panic("deliberate panic", || {
            append(&monitor, PANIC_OUTPUT);
            append(
                &monitor,
                "panicked at partition/src/append.rs:1:1:\n  dense offsets\n",
            );
        });
        let report = check(watch).expect("the other panic fails");
        assert!(report.contains("dense offsets"), "{report}");
        assert!(!report.contains("deliberate"), "{report}");

        // And an expected panic that does not come fails.
        let missing = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            monitor.expect_panic("deliberate panic", || ())
        }));
        let message = missing
            .unwrap_err()
            .downcast_ref::<String>()
            .cloned()
            .unwrap();
        assert!(message.contains("no such panic appeared"), "{message}");
        assert_eq!(monitor.lock().open_expectations, 0);
    }

    #[test]
    fn a_failing_test_prints_the_panic_instead_of_panicking_again() {
        let (_dir, monitor) = new_monitor(true);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _watch = monitor.watch();
            append(&monitor, PANIC_OUTPUT);
            panic!("the test's own failure");
        }));
        // Had the check panicked during the unwinding, the process would have aborted.
        let message = outcome.unwrap_err().downcast_ref::<&str>().copied();
        assert_eq!(message, Some("the test's own failure"));
        assert_eq!(monitor.lock().reported.len(), 4, "the check still ran");
    }

    #[test]
    fn a_shared_instance_needs_a_watch_in_the_calling_thread() {
        let (_dir, monitor) = new_monitor(true);
        let unwatched = std::panic::catch_unwind(|| monitor.require_watch("url"));
        let message = unwatched
            .unwrap_err()
            .downcast_ref::<String>()
            .cloned()
            .unwrap();
        assert!(
            message.contains("let worker = shared().watch();"),
            "{message}"
        );
        let watch = monitor.watch();
        monitor.require_watch("url");
        std::thread::scope(|s| {
            let other = s.spawn(|| monitor.require_watch("url")).join();
            assert!(other.is_err(), "a watch of another thread does not count");
        });
        drop(watch);
        let (_dir, owned) = new_monitor(false);
        owned.require_watch("url");
    }

    #[test]
    fn temp_dirs_are_fresh_and_removed() {
        let a = TempDir::new("kafdo-e2e-unit");
        let b = TempDir::new("kafdo-e2e-unit");
        assert_ne!(a.path(), b.path());
        fs::write(a.path().join("f"), b"x").unwrap();
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists());
    }
}
