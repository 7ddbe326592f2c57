//! A script's command and its arguments, and the argument parsers the cores' runners share.

use std::fmt;
use std::str::FromStr;

/// One command of a script: a name and whitespace-separated arguments, each either positional
/// (`a/0`, `commit`, `5000`) or `key=value` (`pid=7`, `in/0=42`). A word is `key=value` when
/// it has an `=` after at least one character; the key is everything before the first `=`.
///
/// The accessors return `Err` with a message naming the argument; a runner passes it on with
/// `?`, and the harness adds the script and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The first word.
    pub name: String,
    /// The other words, in the order written.
    pub args: Vec<Arg>,
    /// The script line the command is on, counted from 1.
    pub line: usize,
}

/// One argument of a [`Command`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    /// `Some` for `key=value`, `None` for a positional argument.
    pub key: Option<String>,
    pub value: String,
}

impl Command {
    /// Parses one line (neither blank nor a comment) at script line `line`.
    pub fn parse(text: &str, line: usize) -> Command {
        let mut words = text.split_whitespace();
        let name = words
            .next()
            .expect("a command line is not blank")
            .to_owned();
        let args = words
            .map(|word| match word.split_once('=') {
                Some((key, value)) if !key.is_empty() => Arg {
                    key: Some(key.to_owned()),
                    value: value.to_owned(),
                },
                _ => Arg {
                    key: None,
                    value: word.to_owned(),
                },
            })
            .collect();
        Command { name, args, line }
    }

    /// The positional arguments, in order.
    pub fn positional(&self) -> impl Iterator<Item = &str> {
        self.args
            .iter()
            .filter(|a| a.key.is_none())
            .map(|a| a.value.as_str())
    }

    /// The `key=value` arguments, in order.
    pub fn keyed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.args
            .iter()
            .filter_map(|a| Some((a.key.as_deref()?, a.value.as_str())))
    }

    /// The positional argument at `index` (from 0); `what` names it in the error.
    pub fn pos(&self, index: usize, what: &str) -> Result<&str, String> {
        self.positional()
            .nth(index)
            .ok_or_else(|| format!("`{}` needs {what} (positional argument {index})", self.name))
    }

    /// The positional argument at `index`, parsed.
    pub fn pos_parse<T: FromStr>(&self, index: usize, what: &str) -> Result<T, String> {
        parse(self.pos(index, what)?, what)
    }

    /// Whether a positional argument is exactly `word` (`txn`, `commit`, `rejoin`).
    pub fn flag(&self, word: &str) -> bool {
        self.positional().any(|p| p == word)
    }

    /// The value of `key=`, the last one if it is given twice.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.keyed()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }

    /// The value of `key=`, parsed; `None` when it is absent.
    pub fn value<T: FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        self.get(key).map(|v| parse(v, key)).transpose()
    }

    /// The value of `key=`, parsed, or `default` when it is absent.
    pub fn value_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        Ok(self.value(key)?.unwrap_or(default))
    }

    /// The value of `key=`, parsed; an error when it is absent.
    pub fn required<T: FromStr>(&self, key: &str) -> Result<T, String> {
        self.value(key)?
            .ok_or_else(|| format!("`{}` needs {key}=", self.name))
    }

    /// The value of `key=` split at commas (`values=a,b,c`).
    pub fn list(&self, key: &str) -> Option<Vec<&str>> {
        self.get(key).map(list)
    }

    /// Every `T/P=value` argument (`a/0=10`, `in/1=7@meta`) as (topic, partition, value), in
    /// order. Other `key=value` arguments are left out.
    pub fn partition_values(&self) -> Result<Vec<(&str, i32, &str)>, String> {
        self.keyed()
            .filter(|(k, _)| k.contains('/'))
            .map(|(k, v)| {
                let (topic, partition) = topic_partition(k)?;
                Ok((topic, partition, v))
            })
            .collect()
    }
}

/// The command as it reads in a script (normalised to single spaces).
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for arg in &self.args {
            match &arg.key {
                Some(key) => write!(f, " {key}={}", arg.value)?,
                None => write!(f, " {}", arg.value)?,
            }
        }
        Ok(())
    }
}

/// Parses `text`; `what` names the argument in the error.
pub fn parse<T: FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.parse().map_err(|_| {
        format!(
            "{what}: {text:?} is not a valid {}",
            std::any::type_name::<T>()
        )
    })
}

/// Splits at commas; the empty string is the empty list.
pub fn list(text: &str) -> Vec<&str> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split(',').collect()
    }
}

/// Parses a `T/P` pair: a topic, a slash and a partition number (`orders/3`).
pub fn topic_partition(text: &str) -> Result<(&str, i32), String> {
    let (topic, partition) = text
        .rsplit_once('/')
        .filter(|(t, _)| !t.is_empty())
        .ok_or_else(|| format!("{text:?} is not a topic/partition pair"))?;
    Ok((topic, parse(partition, text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_positional_or_key_value() {
        let c = Command::parse("  append pid=7 txn  in/0=42 =x a=b=c ", 3);
        assert_eq!(c.name, "append");
        assert_eq!(c.line, 3);
        assert_eq!(c.positional().collect::<Vec<_>>(), ["txn", "=x"]);
        assert_eq!(
            c.keyed().collect::<Vec<_>>(),
            [("pid", "7"), ("in/0", "42"), ("a", "b=c")]
        );
        assert_eq!(c.to_string(), "append pid=7 txn in/0=42 =x a=b=c");
        assert!(c.flag("txn"));
        assert!(!c.flag("pid"));
    }

    #[test]
    fn values_parse_with_errors_naming_the_argument() {
        let c = Command::parse("tick 500 pid=7 epoch=x pid=8 values=a,,b empty=", 1);
        assert_eq!(c.pos_parse::<i64>(0, "MS"), Ok(500));
        assert_eq!(
            c.pos(1, "MS"),
            Err("`tick` needs MS (positional argument 1)".into())
        );
        assert_eq!(c.value::<i64>("pid"), Ok(Some(8)), "the last one wins");
        assert_eq!(c.value::<i64>("seq"), Ok(None));
        assert_eq!(c.value_or::<i32>("seq", 3), Ok(3));
        assert_eq!(
            c.value::<i32>("epoch"),
            Err("epoch: \"x\" is not a valid i32".into())
        );
        assert_eq!(c.required::<i64>("seq"), Err("`tick` needs seq=".into()));
        assert_eq!(c.list("values"), Some(vec!["a", "", "b"]));
        assert_eq!(c.list("empty"), Some(vec![]));
        assert_eq!(c.list("none"), None);
    }

    #[test]
    fn topic_partition_pairs() {
        assert_eq!(topic_partition("orders/3"), Ok(("orders", 3)));
        assert_eq!(topic_partition("a/b/1"), Ok(("a/b", 1)));
        assert!(topic_partition("orders").is_err());
        assert!(topic_partition("/3").is_err());
        assert!(topic_partition("orders/x").is_err());
        let c = Command::parse("commit c1 a/0=10 gen=3 b/1=7@meta", 1);
        assert_eq!(
            c.partition_values(),
            Ok(vec![("a", 0, "10"), ("b", 1, "7@meta")])
        );
        let bad = Command::parse("commit a/x=1", 1);
        assert!(bad.partition_values().is_err());
    }
}
