//! The golden-script harness of the cores' scenario tests (toydb style), used by
//! `kafdo-partition` (`tests/golden.rs`), `kafdo-txn-coordinator` (`tests/golden.rs`) and
//! `kafdo-group` (`tests/scripts.rs`). It owns the file format and the mechanics; a core's test
//! owns only its commands and how it prints their results, through [`Runner`].
//!
//! # The format
//!
//! A script is a `.txt` file of blocks. A block is one or more command lines, a `---` line,
//! and the output those commands printed, one after another, then a blank line:
//!
//! ```text
//! # The open transaction holds back the last stable offset.
//! register pid=1 epoch=0 tid=tx-a
//! append pid=1 epoch=0 seq=0 txn values=a1,a2
//! ---
//! ok
//! ok base_offset=0 last_offset=1 duplicate=false
//!
//! info
//! ---
//! log_start_offset=0 high_watermark=2 last_stable_offset=0
//! ```
//!
//! - A line whose first non-blank character is `#` is a comment, between blocks or among a
//!   block's commands (not in its output, where every line is output). Blank lines between
//!   blocks are kept as they are.
//! - A command is whitespace-separated words: its name, then arguments, each positional
//!   (`commit`, `a/0`, `5000`) or `key=value` (`pid=7`, `in/0=42`); see [`Command`].
//! - The output runs from `---` to the next blank line, so no output line is blank (a runner
//!   printing one is an error). A command that prints nothing adds no line; a block whose
//!   commands print nothing is `---` followed by the blank line.
//!
//! # Running
//!
//! [`run_scripts`] runs every `*.txt` in a directory, in name order, each on a fresh runner,
//! and compares each block's output with the script's. For each script that differs it prints
//! the first differing block with the script's name and line and a diff (`-` expected, `+`
//! printed); the test fails after all scripts ran. A runner's `Err` (an unknown command, a
//! bad argument) or a panic stops that script and fails the test at the command's line.
//!
//! With `UPDATE_GOLDEN=1` in the environment the differing scripts are rewritten instead,
//! with the output the code prints now (and in the canonical layout: one blank line after
//! every block). Review the `git diff` before committing. A new scenario can be written as
//! commands alone, blocks without `---`, and filled in this way.
//!
//! # Writing a runner
//!
//! ```
//! use kafdo_golden::{Command, Runner};
//!
//! struct Counter(i64);
//!
//! impl Runner for Counter {
//!     fn run(&mut self, command: &Command) -> Result<String, String> {
//!         match command.name.as_str() {
//!             "add" => {
//!                 self.0 += command.pos_parse::<i64>(0, "N")?;
//!                 Ok(String::new())
//!             }
//!             "show" => Ok(format!("count={}", self.0)),
//!             other => Err(format!("unknown command {other:?}")),
//!         }
//!     }
//! }
//!
//! let script = "add 2\nadd 3\nshow\n---\ncount=5\n";
//! let transcript = kafdo_golden::run_script("count.txt", script, &mut Counter(0)).unwrap();
//! assert_eq!(transcript.mismatch, None);
//! assert_eq!(transcript.text, script);
//! ```
//!
//! A core's test is then `kafdo_golden::run_scripts(dir, Runner::new)` in one `#[test]`.
//! The argument parsers the cores share ([`Command`]'s accessors, [`parse`], [`list`],
//! [`topic_partition`]) return `Err` messages naming the argument, for `?`.

mod command;
mod diff;
mod script;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

pub use command::{list, parse, topic_partition, Arg, Command};
use script::{Block, Item};

/// What a core's test implements: it runs one command on the system under test and prints
/// the result.
pub trait Runner {
    /// Runs `command` and returns what it printed: any number of lines (a trailing newline is
    /// optional), none of them blank. The system's own refusals are output like any other
    /// result; `Err` is for a mistake in the script (an unknown command, a missing or bad
    /// argument) and fails the test at the command's line.
    fn run(&mut self, command: &Command) -> Result<String, String>;
}

/// What running one script gave.
#[derive(Debug, PartialEq, Eq)]
pub struct Transcript {
    /// The script as it should read: its comments and commands with the output printed now.
    pub text: String,
    /// The first block whose output differs from the script's, as the message to print (the
    /// script's name and line, the block's commands and a diff); `None` when all match.
    pub mismatch: Option<String>,
}

/// Runs `text`, the script called `name` in messages, command by command on `runner`.
///
/// `Err` when a command returns `Err`, panics, or prints a blank line; the message names the
/// script, the line and the command.
pub fn run_script<R: Runner>(name: &str, text: &str, runner: &mut R) -> Result<Transcript, String> {
    let items = script::parse(text);
    let mut outputs = Vec::new();
    let mut mismatch = None;
    for item in &items {
        let Item::Block(block) = item else { continue };
        let mut output = Vec::new();
        for command in &block.commands {
            output.extend(run_command(name, command, runner)?);
        }
        if mismatch.is_none() {
            mismatch = compare(name, block, &output);
        }
        outputs.push(output);
    }
    Ok(Transcript {
        text: script::render(&items, &outputs),
        mismatch,
    })
}

/// Runs every `*.txt` script in `dir` (in name order, each on a runner from `new_runner`) and
/// panics, after running them all, if any differs from its expected output or fails. With
/// `UPDATE_GOLDEN=1` it rewrites the differing scripts instead. Returns how many scripts ran,
/// so a test can insist that its scenarios are there.
#[track_caller]
pub fn run_scripts<R: Runner>(dir: impl AsRef<Path>, new_runner: impl FnMut() -> R) -> usize {
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| !v.is_empty() && v != "0");
    match check_dir(dir.as_ref(), new_runner, update) {
        Ok(scripts) => scripts,
        Err(message) => panic!("{message}"),
    }
}

fn check_dir<R: Runner>(
    dir: &Path,
    mut new_runner: impl FnMut() -> R,
    update: bool,
) -> Result<usize, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the scripts in {}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("no *.txt scripts in {}", dir.display()));
    }
    // Messages name the script relative to where cargo runs the test (the package).
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut failures = Vec::new();
    for path in &paths {
        let name = path
            .strip_prefix(&cwd)
            .unwrap_or(path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
        match run_script(&name, &text, &mut new_runner()) {
            Err(error) => failures.push(error),
            Ok(transcript) if update => {
                if transcript.text != text {
                    std::fs::write(path, &transcript.text).map_err(|e| format!("{name}: {e}"))?;
                    eprintln!("UPDATE_GOLDEN: rewrote {name}");
                }
            }
            Ok(transcript) => failures.extend(transcript.mismatch),
        }
    }
    if failures.is_empty() {
        return Ok(paths.len());
    }
    Err(format!(
        "{} of {} golden scripts failed (UPDATE_GOLDEN=1 rewrites them with the actual \
         output; review the diff):\n\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    ))
}

/// Runs one command and splits its output into lines.
fn run_command<R: Runner>(
    name: &str,
    command: &Command,
    runner: &mut R,
) -> Result<Vec<String>, String> {
    let at = |what: String| format!("{name}:{}: `{command}`: {what}", command.line);
    // A panic (a failed assertion in the core) is reported at the script line that caused it;
    // the runner is dropped with the rest of the script.
    let output = catch_unwind(AssertUnwindSafe(|| runner.run(command)))
        .map_err(|panic| at(format!("panicked: {}", panic_message(&*panic))))?
        .map_err(at)?;
    let lines: Vec<String> = output.lines().map(str::to_owned).collect();
    if let Some(i) = lines.iter().position(|l| l.trim().is_empty()) {
        return Err(at(format!(
            "output line {} is blank, and a blank line would end the block: {output:?}",
            i + 1
        )));
    }
    Ok(lines)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(a panic without a message)"
    }
}

/// The mismatch message for `block`, if its expected output is not `actual`.
fn compare(name: &str, block: &Block, actual: &[String]) -> Option<String> {
    let mut message = String::new();
    let mut push = |line: &str| {
        message.push_str("    ");
        message.push_str(line);
        message.push('\n');
    };
    let Some(expected) = &block.expected else {
        let header = format!(
            "{name}:{}: the block has no `---` and expected output yet\n",
            block.separator_line
        );
        block.input.iter().for_each(|l| push(l));
        return Some(header + &message);
    };
    if expected == actual {
        return None;
    }
    let lines = diff::diff(expected, actual);
    // The script line of the first difference: the expected line that is not printed, or the
    // one before which the printed line is missing.
    let same = lines
        .iter()
        .take_while(|l| matches!(l, diff::Line::Same(_)))
        .count();
    let line = block.separator_line + 1 + same;
    block.input.iter().for_each(|l| push(l));
    push("---");
    let mut text = format!("{name}:{line}: the output differs (- expected, + actual):\n");
    text.push_str(&message);
    for l in diff::show(&lines).lines() {
        text.push_str("  ");
        text.push_str(l);
        text.push('\n');
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes its arguments; `fail` returns an error, `panic` panics, `blank` prints a blank
    /// line, `nothing` prints nothing.
    struct Echo {
        commands: usize,
    }

    impl Runner for Echo {
        fn run(&mut self, command: &Command) -> Result<String, String> {
            self.commands += 1;
            match command.name.as_str() {
                "echo" => Ok(command.positional().collect::<Vec<_>>().join("\n")),
                "count" => Ok(format!("{} commands\n", self.commands)),
                "nothing" => Ok(String::new()),
                "fail" => Err("bad argument".into()),
                "panic" => panic!("the core broke"),
                "blank" => Ok("a\n\nb".into()),
                other => Err(format!("unknown command {other:?}")),
            }
        }
    }

    fn run(text: &str) -> Result<Transcript, String> {
        run_script("s.txt", text, &mut Echo { commands: 0 })
    }

    const GOOD: &str = "\
# Outputs of a block follow each other.
echo a b
nothing
count
---
a
b
3 commands

nothing
---
";

    #[test]
    fn a_matching_script_is_its_own_transcript() {
        let t = run(GOOD).unwrap();
        assert_eq!(t.mismatch, None);
        assert_eq!(t.text, GOOD);
    }

    #[test]
    fn a_wrong_expected_line_is_a_mismatch_with_its_line_and_a_diff() {
        let wrong = GOOD.replace("b\n3 commands", "B\n3 commands");
        let t = run(&wrong).unwrap();
        assert_eq!(t.text, GOOD, "the transcript has the actual output");
        assert_eq!(
            t.mismatch.unwrap(),
            "\
s.txt:7: the output differs (- expected, + actual):
    echo a b
    nothing
    count
    ---
    a
  - B
  + b
    3 commands
"
        );
    }

    #[test]
    fn missing_and_extra_output_are_mismatches() {
        let t = run("echo a b\n---\na\n\necho c\n---\nc\nd\n").unwrap();
        let mismatch = t.mismatch.unwrap();
        assert!(mismatch.starts_with("s.txt:4: "), "{mismatch}");
        assert!(mismatch.contains("  + b\n"), "{mismatch}");
        assert_eq!(t.text, "echo a b\n---\na\nb\n\necho c\n---\nc\n");
        let t = run("echo a\n").unwrap();
        let mismatch = t.mismatch.unwrap();
        assert!(
            mismatch.starts_with("s.txt:2: the block has no `---`"),
            "{mismatch}"
        );
        assert_eq!(t.text, "echo a\n---\na\n");
    }

    #[test]
    fn only_the_first_mismatch_is_reported() {
        let t = run("echo a\n---\nx\n\necho b\n---\ny\n").unwrap();
        let mismatch = t.mismatch.unwrap();
        assert!(mismatch.contains("- x"), "{mismatch}");
        assert!(!mismatch.contains("- y"), "{mismatch}");
    }

    #[test]
    fn errors_panics_and_blank_output_fail_at_the_command() {
        let text = "echo a\n---\na\n\n# comment\nfail  x=1\n---\n";
        assert_eq!(run(text), Err("s.txt:6: `fail x=1`: bad argument".into()));
        assert_eq!(
            run("panic\n---\n"),
            Err("s.txt:1: `panic`: panicked: the core broke".into())
        );
        let blank = run("echo a\nblank\n---\n").unwrap_err();
        assert!(
            blank.starts_with("s.txt:2: `blank`: output line 2 is blank"),
            "{blank}"
        );
        assert_eq!(
            run("frobnicate\n"),
            Err("s.txt:1: `frobnicate`: unknown command \"frobnicate\"".into())
        );
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("kafdo-golden-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn echo() -> Echo {
        Echo { commands: 0 }
    }

    #[test]
    fn a_directory_fails_on_a_mismatch_and_update_rewrites_it() {
        let dir = TempDir::new("update");
        let good = dir.0.join("a_good.txt");
        let wrong = dir.0.join("b_wrong.txt");
        let ignored = dir.0.join("notes.md");
        std::fs::write(&good, GOOD).unwrap();
        std::fs::write(&wrong, "echo x\n---\ny\n").unwrap();
        std::fs::write(&ignored, "not a script").unwrap();

        let error = check_dir(&dir.0, echo, false).unwrap_err();
        assert!(error.starts_with("1 of 2 golden scripts failed"), "{error}");
        assert!(
            error.contains("b_wrong.txt:3: the output differs"),
            "{error}"
        );
        assert!(error.contains("  - y\n  + x\n"), "{error}");
        assert_eq!(std::fs::read_to_string(&wrong).unwrap(), "echo x\n---\ny\n");

        check_dir(&dir.0, echo, true).unwrap();
        assert_eq!(std::fs::read_to_string(&wrong).unwrap(), "echo x\n---\nx\n");
        assert_eq!(std::fs::read_to_string(&good).unwrap(), GOOD);
        assert_eq!(std::fs::read_to_string(&ignored).unwrap(), "not a script");
        check_dir(&dir.0, echo, false).unwrap();
    }

    #[test]
    fn update_does_not_rewrite_a_script_that_fails() {
        let dir = TempDir::new("failing");
        let path = dir.0.join("s.txt");
        std::fs::write(&path, "echo x\n---\ny\n\nfail\n---\n").unwrap();
        let error = check_dir(&dir.0, echo, true).unwrap_err();
        assert!(error.contains("s.txt:5: `fail`: bad argument"), "{error}");
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(after, "echo x\n---\ny\n\nfail\n---\n");
    }

    #[test]
    fn an_empty_directory_fails() {
        let dir = TempDir::new("empty");
        let error = check_dir(&dir.0, echo, false).unwrap_err();
        assert!(error.starts_with("no *.txt scripts in"), "{error}");
    }
}
