//! A small hand-written flag parser: `--name value`, `--name=value` and boolean `--name`,
//! with `--help` generated from the flag table. A flag given twice keeps its last value for
//! [`Parsed::get`]; [`Parsed::all`] returns every value, for flags that may repeat.
//!
//! Defaults live in the table ([`Flag::default`]) so that `--help` shows the value the
//! program uses: [`Parsed::value`] falls back to the very string `--help` prints, and
//! [`Parsed::get_or`] refuses a default in the code that differs from it, so the two cannot
//! drift apart. Defaults that are not one literal value (derived from a checkpoint, from
//! another flag, or set by a preset) are described instead ([`Flag::default_note`]).
//!
//! Arguments may be any OS string: a file name that is not UTF-8 reaches [`Parsed::path`]
//! unchanged, and any other flag given such a value fails with a message naming it (rather
//! than the standard library's panic in `std::env::args`).

use super::{Result, RunError};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::str::FromStr;

/// What `--help` says about a flag's value when it is not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultValue {
    /// Nothing shown (switches, or a flag whose help says it all).
    None,
    /// The value used, exactly as it would be typed; [`Parsed::value`] parses it.
    Value(&'static str),
    /// A description, for defaults that depend on other input.
    Note(&'static str),
}

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
    /// Shown by `--help` as `[default: ...]`.
    pub default: DefaultValue,
}

impl Flag {
    /// A flag taking a value.
    pub const fn value(name: &'static str, value_name: &'static str, help: &'static str) -> Self {
        Flag {
            name,
            value_name: Some(value_name),
            help,
            hidden: false,
            default: DefaultValue::None,
        }
    }
    /// A boolean switch.
    pub const fn switch(name: &'static str, help: &'static str) -> Self {
        Flag {
            name,
            value_name: None,
            help,
            hidden: false,
            default: DefaultValue::None,
        }
    }
    /// The same flag, hidden from `--help`.
    pub const fn hide(mut self) -> Self {
        self.hidden = true;
        self
    }
    /// The same flag with the value used when it is absent, as typed on the command line
    /// (`"0.0005"`, `"runs/dino_vit_s"`); read it with [`Parsed::value`].
    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = DefaultValue::Value(value);
        self
    }
    /// The same flag with a description of its default, for one that is not a fixed value
    /// (`"the checkpoint's training size"`).
    pub const fn default_note(mut self, note: &'static str) -> Self {
        self.default = DefaultValue::Note(note);
        self
    }
}

/// One value as typed, and as text for messages and [`Parsed::raw`].
#[derive(Clone, Debug)]
struct Value {
    os: OsString,
    /// `os` with bytes that are not UTF-8 as `\u{fffd}`.
    text: String,
}

/// Parsed flags: name → every value given, in command-line order (`"true"` for switches).
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    values: BTreeMap<String, Vec<Value>>,
    /// The declared [`DefaultValue::Value`]s of the table.
    defaults: BTreeMap<String, &'static str>,
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
        let default = match f.default {
            DefaultValue::None => String::new(),
            DefaultValue::Value(v) | DefaultValue::Note(v) => format!(" [default: {v}]"),
        };
        s.push_str(&format!("  {head:<28} {}{default}\n", f.help));
    }
    s.push_str(&format!("  {:<28} Print this help\n", "-h, --help"));
    s
}

/// A command-line argument as text for a message (not UTF-8: lossily, with `\u{fffd}`).
fn shown(a: &OsString) -> String {
    a.to_string_lossy().into_owned()
}

/// `--name` or `--name=value` as (name, inline value); `None` for anything else. The value
/// may be any bytes (Unix); the name must be UTF-8.
fn split_flag(arg: &OsStr) -> Option<(String, Option<OsString>)> {
    if let Some(a) = arg.to_str() {
        let body = a.strip_prefix("--")?;
        return Some(match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(OsString::from(v))),
            None => (body.to_string(), None),
        });
    }
    split_bytes(arg)
}

#[cfg(unix)]
fn split_bytes(arg: &OsStr) -> Option<(String, Option<OsString>)> {
    use std::os::unix::ffi::OsStrExt;
    let body = arg.as_bytes().strip_prefix(b"--")?;
    let eq = body.iter().position(|&c| c == b'=')?;
    let name = std::str::from_utf8(&body[..eq]).ok()?;
    Some((
        name.to_string(),
        Some(OsStr::from_bytes(&body[eq + 1..]).into()),
    ))
}

/// Elsewhere a value that is not Unicode must come as its own argument (`--name VALUE`).
#[cfg(not(unix))]
fn split_bytes(_: &OsStr) -> Option<(String, Option<OsString>)> {
    None
}

/// Parses the process's own arguments (`std::env::args_os`, without the program name).
pub fn parse_env(program: &str, about: &str, flags: &[Flag]) -> Result<Outcome> {
    parse(std::env::args_os().skip(1), program, about, flags)
}

/// Parses `args` (without the program name) against `flags`.
pub fn parse<A: Into<OsString>>(
    args: impl IntoIterator<Item = A>,
    program: &str,
    about: &str,
    flags: &[Flag],
) -> Result<Outcome> {
    let mut values: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut it = args.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Outcome::Help(help_text(program, about, flags)));
        }
        let (name, inline) = split_flag(&arg).ok_or_else(|| {
            RunError::usage(format!(
                "unexpected argument {:?} (see --help)",
                shown(&arg)
            ))
        })?;
        let name = name.as_str();
        let flag = flags
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| RunError::usage(format!("unknown flag --{name} (see --help)")))?;
        let value = match (flag.value_name, inline) {
            (None, None) => OsString::from("true"),
            (None, Some(_)) => {
                return Err(RunError::usage(format!("--{name} takes no value")));
            }
            (Some(_), Some(v)) => v,
            (Some(v), None) => it
                .next()
                .ok_or_else(|| RunError::usage(format!("--{name} needs a value <{v}>")))?,
        };
        values.entry(name.to_string()).or_default().push(Value {
            text: shown(&value),
            os: value,
        });
    }
    let defaults = flags
        .iter()
        .filter_map(|f| match f.default {
            DefaultValue::Value(v) => Some((f.name.to_string(), v)),
            _ => None,
        })
        .collect();
    Ok(Outcome::Run(Parsed { values, defaults }))
}

impl Parsed {
    /// The last value of a flag, if given.
    fn last(&self, name: &str) -> Option<&Value> {
        self.values.get(name).and_then(|v| v.last())
    }
    /// The value of a flag as text, if given (bytes that are not UTF-8 become `\u{fffd}`: use
    /// [`Parsed::path`] for file names, [`Parsed::get`] to refuse such bytes).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.last(name).map(|v| v.text.as_str())
    }
    /// Every value of a flag that may be given several times, in order (empty if absent), as
    /// text as [`Parsed::raw`].
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .get(name)
            .map(|v| v.iter().map(|v| v.text.as_str()).collect())
            .unwrap_or_default()
    }
    /// Every value of a flag that may be given several times, as paths (any bytes).
    pub fn all_paths(&self, name: &str) -> Vec<PathBuf> {
        self.values
            .get(name)
            .map(|v| v.iter().map(|v| PathBuf::from(&v.os)).collect())
            .unwrap_or_default()
    }
    /// A file-name flag, if given, exactly as typed (it need not be UTF-8).
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.last(name).map(|v| PathBuf::from(&v.os))
    }
    /// A file-name flag as typed, or its declared default ([`Flag::default`]).
    pub fn path_value(&self, name: &str) -> Result<PathBuf> {
        match self.path(name) {
            Some(p) => Ok(p),
            None => self.value(name),
        }
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
        match self.last(name) {
            None => Ok(None),
            Some(v) => {
                let Some(s) = v.os.to_str() else {
                    return Err(RunError::usage(format!(
                        "--{name} {:?}: not valid UTF-8",
                        v.text
                    )));
                };
                s.parse()
                    .map(Some)
                    .map_err(|e| RunError::usage(format!("--{name} {s:?}: {e}")))
            }
        }
    }
    /// The parsed value of a flag, or `default`. When the table declares a default value
    /// ([`Flag::default`]) it must be this one: otherwise `--help` would show a value the
    /// program does not use, and every run without the flag fails with an internal error
    /// (so that the examples' tests catch the drift). Defaults that vary, e.g. with a preset,
    /// are declared as notes ([`Flag::default_note`]) and are not checked.
    pub fn get_or<T>(&self, name: &str, default: T) -> Result<T>
    where
        T: FromStr + PartialEq + std::fmt::Debug,
        T::Err: std::fmt::Display,
    {
        if let Some(v) = self.get(name)? {
            return Ok(v);
        }
        if let Some(d) = self.defaults.get(name) {
            if d.parse::<T>().ok().as_ref() != Some(&default) {
                return Err(RunError::new(format!(
                    "internal: --{name} defaults to {default:?} but --help says {d}"
                )));
            }
        }
        Ok(default)
    }
    /// The parsed value of a flag, or its declared default ([`Flag::default`]): the value
    /// `--help` shows. A flag without one is a mistake in the program's table, reported as
    /// such.
    pub fn value<T: FromStr>(&self, name: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        if let Some(v) = self.get(name)? {
            return Ok(v);
        }
        let d = self.defaults.get(name).ok_or_else(|| {
            RunError::new(format!("internal: --{name} declares no default value"))
        })?;
        d.parse().map_err(|e| {
            RunError::new(format!(
                "internal: the default of --{name}, {d:?}, is invalid: {e}"
            ))
        })
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

    #[test]
    fn help_shows_defaults_and_values_fall_back_to_them() {
        let flags = [
            Flag::value("lr", "LR", "Learning rate").default("0.0005"),
            Flag::value("size", "N", "Side").default_note("the data's"),
            Flag::value("name", "S", "Name"),
        ];
        let h = help_text("t", "", &flags);
        assert!(h.contains("Learning rate [default: 0.0005]\n"), "{h}");
        assert!(h.contains("Side [default: the data's]\n"), "{h}");
        assert!(h.contains("Name\n"), "{h}");
        let Outcome::Run(p) = parse(["--size", "3"], "t", "", &flags).unwrap() else {
            panic!("help")
        };
        assert_eq!(p.value::<f64>("lr").unwrap(), 0.0005);
        assert_eq!(p.value::<usize>("size").unwrap(), 3);
        let e = p.value::<String>("name").unwrap_err();
        assert!(e.message.contains("--name declares no default"), "{e}");
        // A default in the code that is not the one shown is caught.
        assert_eq!(p.get_or("lr", 0.0005).unwrap(), 0.0005);
        assert_eq!(p.get_or("name", 7).unwrap(), 7);
        let e = p.get_or("lr", 0.001).unwrap_err();
        assert_eq!(
            e.message,
            "internal: --lr defaults to 0.001 but --help says 0.0005"
        );
    }

    #[cfg(unix)]
    #[test]
    fn values_that_are_not_utf8_are_kept_for_paths_and_named_elsewhere() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"caf\xe9.png".to_vec());
        let flags = [Flag::value("image", "FILE", ""), Flag::value("n", "N", "")];
        let mut inline = OsString::from("--image=");
        inline.push(&bad);
        let args = [inline, "--n".into(), bad.clone()];
        let Outcome::Run(p) = parse(args, "t", "", &flags).unwrap() else {
            panic!("help")
        };
        assert_eq!(p.path("image"), Some(PathBuf::from(bad.clone())));
        let e = p.get::<usize>("n").unwrap_err();
        assert_eq!(e.message, "--n \"caf\u{fffd}.png\": not valid UTF-8");
        let e = parse([bad], "t", "", &flags).unwrap_err();
        assert!(
            e.message
                .contains("unexpected argument \"caf\u{fffd}.png\""),
            "{e}"
        );
    }
}
