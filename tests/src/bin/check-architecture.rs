//! Checks the dependency rules among ARCHITECTURE.md's "Architecture invariants" mechanically,
//! from what `cargo metadata` says every workspace member declares. `make lint` runs it:
//!
//! ```text
//! cargo run -q -p kafdo-e2e --bin check-architecture [-- --manifest-path <other>/Cargo.toml]
//! ```
//!
//! # The rules
//!
//! "Ours" is the workspace: the members `cargo metadata` lists, not a list kept here, so a new
//! crate (such as `kafdo-broker`) is covered the day it joins. Dependencies count as declared,
//! for every target platform; normal and build dependencies alike, dev-dependencies where a
//! rule says so.
//!
//! 1. Only `kafdo-worker` depends on the `worker` crate (or the rest of workers-rs:
//!    `worker-sys`, `worker-macros`, `worker-kv`), and `kafdo-client` as an optional normal
//!    dependency, for its feature-gated Worker transport. Nothing else, of any kind: the cores,
//!    the broker and the simulator build and test natively unchanged.
//! 2. A core (`kafdo-partition`, `kafdo-metadata`, `kafdo-ingest`, `kafdo-txn-coordinator`,
//!    `kafdo-group`) depends on no other member but `kafdo-types` and `kafdo-sql`, plus the
//!    test-only `kafdo-golden` as a dev-dependency: no other core (cores never call each
//!    other), and none of the broker, the Worker, the client, the simulator or these tests.
//! 3. `kafdo-types`, the wire crate, depends on no member at all.
//! 4. `kafdo-client` depends on no member but `kafdo-types` (its dev-dependencies may use the
//!    end-to-end harness): it sees Kafdo only through the HTTP API.
//! 5. `kafdo-sql` depends on no member at all.
//! 6. `kafdo-gateway` depends on no member but `kafdo-client` and `kafdo-types` (its
//!    dev-dependencies may use the harness): a Kafka client reaches Kafdo only through the
//!    HTTP API, as every other client does.
//!
//! A crate a rule names that is not a member (renamed or removed) is an error too, so a rule
//! never passes by checking nothing. The crates only named as forbidden (the broker, the
//! golden harness) may or may not exist.
//!
//! It prints every broken rule, naming the crate, the dependency and its kind, and exits 1.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde_json::Value;

/// The workers-rs crates: only the Worker knows Cloudflare.
const WORKERS_RS: [&str; 4] = ["worker", "worker-sys", "worker-macros", "worker-kv"];
const WORKER: &str = "kafdo-worker";
const CLIENT: &str = "kafdo-client";
const GATEWAY: &str = "kafdo-gateway";
const TYPES: &str = "kafdo-types";
const SQL: &str = "kafdo-sql";
/// The test-only golden-script harness a core may use in its tests.
const GOLDEN: &str = "kafdo-golden";
/// The sans-IO state machines.
const CORES: [&str; 5] = [
    "kafdo-partition",
    "kafdo-metadata",
    "kafdo-ingest",
    "kafdo-txn-coordinator",
    "kafdo-group",
];

/// How a dependency is declared.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    Normal,
    Dev,
    Build,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Normal => "dependency",
            Kind::Dev => "dev-dependency",
            Kind::Build => "build-dependency",
        }
    }
}

/// One declared dependency of a member.
#[derive(Clone, Debug)]
struct Dependency {
    /// The package's name (a `package = "..."` rename is seen through).
    name: String,
    kind: Kind,
    optional: bool,
}

impl Dependency {
    fn describe(&self) -> String {
        let optional = if self.optional { "optional " } else { "" };
        format!("{} ({optional}{})", self.name, self.kind.describe())
    }
}

/// A workspace member and what it declares.
#[derive(Clone, Debug)]
struct Package {
    name: String,
    dependencies: Vec<Dependency>,
}

/// The workspace members, from `cargo metadata --format-version 1`.
#[derive(Clone, Debug)]
struct Workspace {
    members: Vec<Package>,
}

impl Workspace {
    /// Reads the members out of `cargo metadata` output (with or without `--no-deps`: packages
    /// that are not members are left out).
    fn from_metadata(metadata: &Value) -> Result<Workspace, String> {
        let ids: BTreeSet<&str> = metadata["workspace_members"]
            .as_array()
            .ok_or("no `workspace_members` in the metadata")?
            .iter()
            .map(|id| id.as_str().ok_or("a workspace member id is not a string"))
            .collect::<Result<_, _>>()?;
        let packages = metadata["packages"]
            .as_array()
            .ok_or("no `packages` in the metadata")?;
        let mut members = Vec::new();
        for package in packages {
            if !package["id"].as_str().is_some_and(|id| ids.contains(id)) {
                continue;
            }
            let name = string(package, "name")?;
            let dependencies = package["dependencies"]
                .as_array()
                .ok_or_else(|| format!("package {name} has no `dependencies`"))?
                .iter()
                .map(|dependency| {
                    let kind = match dependency["kind"].as_str() {
                        None => Kind::Normal,
                        Some("dev") => Kind::Dev,
                        Some("build") => Kind::Build,
                        Some(other) => return Err(format!("unknown dependency kind {other:?}")),
                    };
                    Ok(Dependency {
                        name: string(dependency, "name")?,
                        kind,
                        optional: dependency["optional"].as_bool().unwrap_or(false),
                    })
                })
                .collect::<Result<_, String>>()?;
            members.push(Package { name, dependencies });
        }
        if members.len() != ids.len() {
            return Err(format!(
                "{} workspace members, {} of them found among the packages",
                ids.len(),
                members.len()
            ));
        }
        Ok(Workspace { members })
    }

    fn member(&self, name: &str) -> Option<&Package> {
        self.members.iter().find(|p| p.name == name)
    }

    fn is_member(&self, name: &str) -> bool {
        self.member(name).is_some()
    }

    /// The dependencies of `package` on workspace members.
    fn internal<'a>(&'a self, package: &'a Package) -> impl Iterator<Item = &'a Dependency> {
        package
            .dependencies
            .iter()
            .filter(|d| self.is_member(&d.name))
    }
}

fn string(value: &Value, field: &str) -> Result<String, String> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no string `{field}` in {value}"))
}

/// Every broken rule, one sentence each; empty when the invariants hold.
fn violations(workspace: &Workspace) -> Vec<String> {
    let mut found = Vec::new();
    for name in [WORKER, CLIENT, GATEWAY, TYPES, SQL].iter().chain(&CORES) {
        if !workspace.is_member(name) {
            found.push(format!(
                "{name} is not a workspace member, but the architecture check has rules about \
                 it: update tests/src/bin/check-architecture.rs with ARCHITECTURE.md"
            ));
        }
    }

    // 1. Only the Worker knows Cloudflare.
    for package in &workspace.members {
        for dependency in &package.dependencies {
            if !WORKERS_RS.contains(&dependency.name.as_str()) {
                continue;
            }
            let allowed = package.name == WORKER
                || (package.name == CLIENT
                    && dependency.name == "worker"
                    && dependency.optional
                    && dependency.kind == Kind::Normal);
            if !allowed {
                found.push(format!(
                    "{} depends on {}: only {WORKER} depends on workers-rs (and {CLIENT} on \
                     `worker` as an optional dependency, for its feature-gated transport)",
                    package.name,
                    dependency.describe()
                ));
            }
        }
    }

    // 2. A core stands alone on the wire types and the storage trait.
    for package in CORES.iter().filter_map(|core| workspace.member(core)) {
        for dependency in workspace.internal(package) {
            let allowed = dependency.name == TYPES
                || dependency.name == SQL
                || (dependency.name == GOLDEN && dependency.kind == Kind::Dev);
            if allowed {
                continue;
            }
            let why = if CORES.contains(&dependency.name.as_str()) {
                "a core depends on no other core (cores never call each other)".to_string()
            } else {
                format!(
                    "a core depends on no member but {TYPES} and {SQL} ({GOLDEN} only as a \
                     dev-dependency)"
                )
            };
            found.push(format!(
                "{} depends on {}: {why}",
                package.name,
                dependency.describe()
            ));
        }
    }

    // 3 and 5. The wire types and the storage trait depend on nothing of ours.
    for name in [TYPES, SQL] {
        let Some(package) = workspace.member(name) else {
            continue;
        };
        for dependency in workspace.internal(package) {
            found.push(format!(
                "{name} depends on {}: {name} depends on no workspace member",
                dependency.describe()
            ));
        }
    }

    // 4. The client sees Kafdo only through the HTTP API.
    if let Some(package) = workspace.member(CLIENT) {
        for dependency in workspace.internal(package) {
            if dependency.kind != Kind::Dev && dependency.name != TYPES {
                found.push(format!(
                    "{CLIENT} depends on {}: {CLIENT} depends on no member but {TYPES} (it \
                     sees Kafdo only through the HTTP API)",
                    dependency.describe()
                ));
            }
        }
    }

    // 6. The gateway is an HTTP client of Kafdo.
    if let Some(package) = workspace.member(GATEWAY) {
        for dependency in workspace.internal(package) {
            if dependency.kind != Kind::Dev && dependency.name != TYPES && dependency.name != CLIENT
            {
                found.push(format!(
                    "{GATEWAY} depends on {}: {GATEWAY} depends on no member but {CLIENT} and \
                     {TYPES} (it reaches Kafdo only through the HTTP API)",
                    dependency.describe()
                ));
            }
        }
    }
    found
}

fn main() -> ExitCode {
    // The workspace this crate is in, unless `--manifest-path` names another one's Cargo.toml.
    let mut args = std::env::args_os().skip(1);
    let manifest = match (args.next(), args.next(), args.next()) {
        (None, ..) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"),
        (Some(flag), Some(path), None) if flag == "--manifest-path" => PathBuf::from(path),
        _ => {
            eprintln!("usage: check-architecture [--manifest-path <workspace>/Cargo.toml]");
            return ExitCode::from(2);
        }
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!(
                "check-architecture: cargo metadata failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("check-architecture: cannot run cargo metadata: {e}");
            return ExitCode::FAILURE;
        }
    };
    let workspace = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata is not JSON: {e}"))
        .and_then(|metadata| Workspace::from_metadata(&metadata));
    let workspace = match workspace {
        Ok(workspace) => workspace,
        Err(e) => {
            eprintln!("check-architecture: {e}");
            return ExitCode::FAILURE;
        }
    };
    let found = violations(&workspace);
    if found.is_empty() {
        println!(
            "check-architecture: the dependency invariants hold ({} workspace members)",
            workspace.members.len()
        );
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "check-architecture: {} broken (see ARCHITECTURE.md, \"Architecture invariants\"):",
        found.len()
    );
    for violation in &found {
        eprintln!("  - {violation}");
    }
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A dependency as `cargo metadata` writes it: `kind` null, "dev" or "build".
    fn dep(name: &str, kind: Option<&str>, optional: bool) -> Value {
        json!({
            "name": name,
            "source": null,
            "req": "*",
            "kind": kind,
            "rename": null,
            "optional": optional,
            "uses_default_features": true,
            "features": [],
            "target": null,
            "path": format!("/repo/{name}"),
        })
    }

    fn normal(name: &str) -> Value {
        dep(name, None, false)
    }

    fn dev(name: &str) -> Value {
        dep(name, Some("dev"), false)
    }

    /// Metadata with these members and one package that is not a member (a registry crate).
    fn metadata(members: &[(&str, Vec<Value>)]) -> Value {
        let id = |name: &str| format!("path+file:///repo/{name}#0.1.0");
        let mut packages: Vec<Value> = members
            .iter()
            .map(|(name, deps)| json!({"name": name, "id": id(name), "dependencies": deps}))
            .collect();
        packages.push(json!({
            "name": "worker-macros",
            "id": "registry+https://github.com/rust-lang/crates.io-index#worker-macros@0.8.7",
            "dependencies": [normal("worker")],
        }));
        json!({
            "packages": packages,
            "workspace_members": members.iter().map(|(name, _)| id(name)).collect::<Vec<_>>(),
            "workspace_root": "/repo",
        })
    }

    /// The layout ARCHITECTURE.md describes, with the broker and the golden harness.
    fn layout() -> Vec<(&'static str, Vec<Value>)> {
        let core = || {
            vec![
                normal("kafdo-types"),
                normal("kafdo-sql"),
                normal("serde"),
                dev("kafdo-sql"),
                dev("kafdo-golden"),
                dev("proptest"),
            ]
        };
        let mut worker_deps = vec![normal("kafdo-types"), normal("kafdo-broker")];
        worker_deps.extend(CORES.iter().map(|c| normal(c)));
        worker_deps.push(normal("worker"));
        let mut broker_deps = vec![normal("kafdo-types"), normal("kafdo-sql")];
        broker_deps.extend(CORES.iter().map(|c| normal(c)));
        let mut sim_deps = vec![normal("kafdo-types"), dep("kafdo-sql", None, true)];
        sim_deps.extend(CORES.iter().map(|c| dep(c, None, true)));
        sim_deps.push(normal("kafdo-broker"));
        let mut members = vec![
            ("kafdo-types", vec![normal("serde"), dev("proptest")]),
            ("kafdo-sql", vec![normal("rusqlite"), normal("thiserror")]),
            ("kafdo-golden", vec![normal("similar")]),
            ("kafdo-broker", broker_deps),
            ("kafdo-worker", worker_deps),
            (
                "kafdo-client",
                vec![
                    normal("kafdo-types"),
                    dep("worker", None, true),
                    dep("reqwest", None, true),
                    dev("kafdo-e2e"),
                ],
            ),
            (
                "kafdo-gateway",
                vec![
                    normal("kafdo-client"),
                    normal("kafdo-types"),
                    normal("kafka-protocol"),
                ],
            ),
            ("kafdo-sim", sim_deps),
            ("kafdo-e2e", vec![normal("kafdo-types"), dev("kafdo-sim")]),
        ];
        members.extend(CORES.iter().map(|c| (*c, core())));
        members
    }

    /// The violations of `layout()` after `change` edits it.
    fn check(change: impl FnOnce(&mut Vec<(&'static str, Vec<Value>)>)) -> Vec<String> {
        let mut members = layout();
        change(&mut members);
        violations(&Workspace::from_metadata(&metadata(&members)).unwrap())
    }

    fn add(members: &mut [(&'static str, Vec<Value>)], to: &str, dependency: Value) {
        members
            .iter_mut()
            .find(|(name, _)| *name == to)
            .unwrap_or_else(|| panic!("no member {to}"))
            .1
            .push(dependency);
    }

    /// Asserts exactly one violation, naming the crate and the dependency.
    #[track_caller]
    fn assert_one(found: &[String], starts: &str) {
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with(starts), "{found:#?}");
    }

    #[test]
    fn the_layout_of_the_architecture_holds() {
        assert_eq!(check(|_| {}), Vec::<String>::new());
    }

    #[test]
    fn the_broker_and_the_golden_harness_may_be_absent() {
        let found = check(|m| {
            m.retain(|(name, _)| *name != "kafdo-broker" && *name != "kafdo-golden");
            for (_, deps) in m.iter_mut() {
                deps.retain(|d| d["name"] != "kafdo-broker" && d["name"] != "kafdo-golden");
            }
        });
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn only_the_worker_and_the_clients_optional_transport_depend_on_worker() {
        for who in [
            "kafdo-broker",
            "kafdo-sim",
            "kafdo-e2e",
            "kafdo-types",
            "kafdo-group",
        ] {
            let found = check(|m| add(m, who, normal("worker")));
            assert_one(&found, &format!("{who} depends on worker (dependency)"));
        }
        // A dev- or build-dependency counts too, and so does the rest of workers-rs.
        let found = check(|m| add(m, "kafdo-partition", dev("worker")));
        assert_one(&found, "kafdo-partition depends on worker (dev-dependency)");
        let found = check(|m| add(m, "kafdo-sim", dep("worker", Some("build"), false)));
        assert_one(&found, "kafdo-sim depends on worker (build-dependency)");
        let found = check(|m| add(m, "kafdo-broker", dep("worker-sys", None, true)));
        assert_one(
            &found,
            "kafdo-broker depends on worker-sys (optional dependency)",
        );
        // The client only optionally.
        let found = check(|m| {
            let client = m.iter_mut().find(|(n, _)| *n == "kafdo-client").unwrap();
            client.1.retain(|d| d["name"] != "worker");
            client.1.push(normal("worker"));
        });
        assert_one(&found, "kafdo-client depends on worker (dependency)");
        let found = check(|m| add(m, "kafdo-client", dev("worker")));
        assert_one(&found, "kafdo-client depends on worker (dev-dependency)");
    }

    #[test]
    fn a_core_depends_on_no_other_core() {
        for (core, other) in [
            ("kafdo-partition", "kafdo-group"),
            ("kafdo-txn-coordinator", "kafdo-partition"),
            ("kafdo-group", "kafdo-metadata"),
        ] {
            let found = check(|m| add(m, core, normal(other)));
            assert_one(&found, &format!("{core} depends on {other} (dependency)"));
            assert!(found[0].contains("no other core"), "{found:?}");
            // In its tests neither.
            let found = check(|m| add(m, core, dev(other)));
            assert_one(
                &found,
                &format!("{core} depends on {other} (dev-dependency)"),
            );
        }
    }

    #[test]
    fn a_core_depends_on_none_of_the_crates_above_it() {
        for above in [
            "kafdo-broker",
            "kafdo-worker",
            "kafdo-client",
            "kafdo-sim",
            "kafdo-e2e",
        ] {
            for core in CORES {
                let found = check(|m| add(m, core, normal(above)));
                assert_one(&found, &format!("{core} depends on {above} (dependency)"));
                let found = check(|m| add(m, core, dev(above)));
                assert_one(
                    &found,
                    &format!("{core} depends on {above} (dev-dependency)"),
                );
            }
        }
        // The golden harness is for tests only.
        let found = check(|m| add(m, "kafdo-ingest", normal("kafdo-golden")));
        assert_one(&found, "kafdo-ingest depends on kafdo-golden (dependency)");
        // Registry crates are not ours, whatever their name.
        assert_eq!(
            check(|m| add(m, "kafdo-ingest", normal("sha2"))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_wire_types_and_the_storage_trait_depend_on_nothing_of_ours() {
        for (crate_name, dependency) in [
            ("kafdo-types", normal("kafdo-sql")),
            ("kafdo-types", dev("kafdo-golden")),
            ("kafdo-sql", normal("kafdo-types")),
            ("kafdo-sql", dev("kafdo-partition")),
        ] {
            let name = dependency["name"].as_str().unwrap().to_string();
            let found = check(|m| add(m, crate_name, dependency));
            assert_one(&found, &format!("{crate_name} depends on {name}"));
        }
    }

    #[test]
    fn the_gateway_is_an_http_client_of_kafdo() {
        for other in ["kafdo-sql", "kafdo-partition", "kafdo-broker", "kafdo-sim"] {
            let found = check(|m| add(m, "kafdo-gateway", normal(other)));
            assert_one(
                &found,
                &format!("kafdo-gateway depends on {other} (dependency)"),
            );
        }
        assert_eq!(
            check(|m| add(m, "kafdo-gateway", dev("kafdo-e2e"))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_client_sees_kafdo_only_through_the_http_api() {
        for other in ["kafdo-sql", "kafdo-partition", "kafdo-broker", "kafdo-e2e"] {
            let found = check(|m| add(m, "kafdo-client", normal(other)));
            assert_one(
                &found,
                &format!("kafdo-client depends on {other} (dependency)"),
            );
        }
        let found = check(|m| add(m, "kafdo-client", dep("kafdo-sim", None, true)));
        assert_one(
            &found,
            "kafdo-client depends on kafdo-sim (optional dependency)",
        );
        let found = check(|m| add(m, "kafdo-client", dep("kafdo-sql", Some("build"), false)));
        assert_one(
            &found,
            "kafdo-client depends on kafdo-sql (build-dependency)",
        );
        // Its tests may use the harness.
        assert_eq!(
            check(|m| add(m, "kafdo-client", dev("kafdo-sim"))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_renamed_dependency_is_seen_through() {
        let found = check(|m| {
            let mut renamed = normal("kafdo-group");
            renamed["rename"] = json!("groups");
            add(m, "kafdo-partition", renamed);
        });
        assert_one(
            &found,
            "kafdo-partition depends on kafdo-group (dependency)",
        );
    }

    #[test]
    fn a_crate_the_rules_name_must_exist() {
        let found = check(|m| m.retain(|(name, _)| *name != "kafdo-ingest"));
        assert_one(&found, "kafdo-ingest is not a workspace member");
    }

    #[test]
    fn every_violation_is_reported() {
        let found = check(|m| {
            add(m, "kafdo-partition", normal("kafdo-group"));
            add(m, "kafdo-sim", normal("worker"));
            add(m, "kafdo-types", normal("kafdo-sql"));
        });
        assert_eq!(found.len(), 3, "{found:#?}");
    }

    #[test]
    fn metadata_that_is_not_cargos_is_refused() {
        assert!(Workspace::from_metadata(&json!({"packages": []})).is_err());
        let mut broken = metadata(&layout());
        broken["packages"][0]["dependencies"][0]["kind"] = json!("weird");
        assert!(Workspace::from_metadata(&broken).is_err());
        let mut missing = metadata(&layout());
        missing["workspace_members"]
            .as_array_mut()
            .unwrap()
            .push(json!("path+file:///repo/ghost#0.1.0"));
        assert!(Workspace::from_metadata(&missing).is_err());
    }
}
