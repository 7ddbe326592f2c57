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

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafdo_types::api::{
    CreateTopicRequest, FetchResponse, Health, InitProducerRequest, InitProducerResponse,
    PartitionInfo, PartitionProduceRequest, PartitionProduceResponse, ProduceRequest,
    ProduceResponse, TopicConfig, TopicDescription,
};
use kafdo_types::{ApiError, ErrorBody, ErrorCode, ProduceRecord, Record};
use serde::de::DeserializeOwned;
use serde::Serialize;

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
/// its output in `$KAFDO_E2E_LOG`, and kills the whole group (itself included) as soon as the
/// test process or the command is gone.
const WATCHDOG: &str = r#"
"$@" >"$KAFDO_E2E_LOG" 2>&1 </dev/null &
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
    /// (wrangler's `XDG_CONFIG_HOME`, where it writes large debug logs) and the output logs.
    dir: TempDir,
    starts: u32,
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
        let mut wrangler = Wrangler {
            launcher,
            child: Mutex::new(None),
            port: 0,
            base_url: String::new(),
            dir,
            starts: 0,
            watchdog_cleans_up,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        wrangler.launch();
        wrangler
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The persist directory (the Durable Objects' state).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A JSON client for this instance.
    pub fn client(&self) -> Client {
        Client::new(&self.base_url)
    }

    /// Stops the runtime (the whole process group) and starts it again on the same state
    /// directory, on a new free port; waits for `GET /health`. Clients made before must be
    /// remade with [`Wrangler::client`].
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// The last part of the runtime's output, for failure messages.
    pub fn output_tail(&self) -> String {
        tail_of(&self.log_path(), 16 * 1024)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("output-{}.log", self.starts))
    }

    fn launch(&mut self) {
        self.starts += 1;
        self.port = free_port();
        self.base_url = format!("http://127.0.0.1:{}", self.port);
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
            .env("KAFDO_E2E_LOG", self.log_path())
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
    fn drop(&mut self) {
        self.stop();
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

fn tail_of(path: &Path, max_bytes: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        let start = bytes.len().saturating_sub(max_bytes);
        text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    }
    if text.is_empty() {
        format!("(no output in {})", path.display())
    } else {
        text
    }
}

/// The `wrangler dev` instance shared by the tests of one test binary, started on first use.
/// A start that failed fails every test that asks, with the same message.
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
}

impl Client {
    /// A JSON client of the Worker at `base_url`.
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

    /// Every record of a partition from offset 0 up to its high watermark, fetched page by page.
    pub fn read_all(&self, topic: &str, partition: i32) -> Vec<Record> {
        let high_watermark = self.partition_info(topic, partition).high_watermark;
        let mut records = Vec::new();
        let mut offset = 0;
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
