//! A small hand-written flag parser: `--name value`, `--name=value` and boolean `--name`,
//! with `--help` generated from the flag table. A flag given twice keeps its last value for
//! [`Parsed::get`]; [`Parsed::all`] returns every value, for flags that may repeat.

use super::{Result, RunError};
use std::collections::BTreeMap;
use std::str::FromStr;

/// One flag of the table.
#[derive(Clone, Debug)]
pub struct Flag {
    /// Without the leading `--`.
    pub name: &'static str,
    /// `None` for a boolean switch.
    pub value_name: Option<&'static str>,
    pub help: &'static str,
    /// Left out of `--help` (test-only flags).
    pub hidden: bool,
}

impl Flag {
    /// A flag taking a value.
    pub const fn value(name: &'static str, value_name: &'static str, help: &'static str) -> Self {
        Flag {
            name,
            value_name: Some(value_name),
            help,
            hidden: false,
        }
    }
    /// A boolean switch.
    pub const fn switch(name: &'static str, help: &'static str) -> Self {
        Flag {
            name,
            value_name: None,
            help,
            hidden: false,
        }
    }
    /// The same flag, hidden from `--help`.
    pub const fn hide(mut self) -> Self {
        self.hidden = true;
        self
    }
}

/// Parsed flags: name → value (`"true"` for switches).
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    values: BTreeMap<String, String>,
    /// Every value of each flag, in command-line order.
    all: BTreeMap<String, Vec<String>>,
}

/// What [`parse`] found.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// `--help` was given; the text to print.
    Help(String),
    Run(Parsed),
}

/// The `--help` text.
pub fn help_text(program: &str, about: &str, flags: &[Flag]) -> String {
    let mut s = format!("{about}\n\nUsage: {program} [OPTIONS]\n\nOptions:\n");
    for f in flags.iter().filter(|f| !f.hidden) {
        let head = match f.value_name {
            Some(v) => format!("--{} <{v}>", f.name),
            None => format!("--{}", f.name),
        };
        s.push_str(&format!("  {head:<28} {}\n", f.help));
    }
    s.push_str(&format!("  {:<28} Print this help\n", "-h, --help"));
    s
}

/// Parses `args` (without the program name) against `flags`.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    program: &str,
    about: &str,
    flags: &[Flag],
) -> Result<Outcome> {
    let mut values = BTreeMap::new();
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            return Ok(Outcome::Help(help_text(program, about, flags)));
        }
        let Some(body) = a.strip_prefix("--") else {
            return Err(RunError::usage(format!(
                "unexpected argument {a:?} (see --help)"
            )));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let flag = flags
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| RunError::usage(format!("unknown flag --{name} (see --help)")))?;
        let value = match (flag.value_name, inline) {
            (None, None) => "true".to_string(),
            (None, Some(_)) => {
                return Err(RunError::usage(format!("--{name} takes no value")));
            }
            (Some(_), Some(v)) => v,
            (Some(v), None) => it
                .next()
                .ok_or_else(|| RunError::usage(format!("--{name} needs a value <{v}>")))?,
        };
        all.entry(name.to_string()).or_default().push(value.clone());
        values.insert(name.to_string(), value);
    }
    Ok(Outcome::Run(Parsed { values, all }))
}

impl Parsed {
    /// The raw value of a flag, if given.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
    /// Every value of a flag that may be given several times, in order (empty if absent).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.all
            .get(name)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
    /// Whether a switch was given.
    pub fn switch(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
    /// The parsed value of a flag, if given.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|e| RunError::usage(format!("--{name} {v:?}: {e}"))),
        }
    }
    /// The parsed value of a flag, or `default`.
    pub fn get_or<T: FromStr>(&self, name: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self.get(name)?.unwrap_or(default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_flags_keep_every_value() {
        let flags = [Flag::value("images", "PATH", ""), Flag::switch("x", "")];
        let args = ["--images", "a", "--x", "--images=b"].map(String::from);
        let Outcome::Run(p) = parse(args, "t", "", &flags).unwrap() else {
            panic!("help")
        };
        assert_eq!(p.all("images"), ["a", "b"]);
        assert_eq!(p.raw("images"), Some("b"));
        assert!(p.all("y").is_empty() && p.switch("x"));
    }
}
