//! A small, dependency-free reader for the reference fixtures in `tests/fixtures/*.safetensors`
//! written by `scripts/gen_fixtures.py` (see its header for the key and metadata conventions).
//!
//! Reusable from any test crate of the workspace:
//!
//! ```ignore
//! #[path = "../tensor/tests/common/fixtures.rs"]
//! mod fixtures;
//! let fx = fixtures::Fixtures::open("tensor_ops.safetensors");
//! for case in fx.cases_with_op("softmax") {
//!     let x = case.get("x"); // an Array: dtype, shape, data
//!     let axis = case.params().get("axis").unwrap().as_i64();
//! }
//! ```
//!
//! It knows nothing about Tessera's types, so autograd and the root test suite can turn the
//! arrays into whatever they test. The safetensors format: an 8-byte little-endian header
//! length, a JSON header mapping each key to `{dtype, shape, data_offsets}` (plus a
//! string-to-string `__metadata__`), then the raw little-endian data.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------- JSON

/// A parsed JSON value (enough of JSON for safetensors headers and the per-case parameters).
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Parses a complete JSON text.
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at byte {}", p.i));
        }
        Ok(v)
    }

    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            other => panic!("expected a number, got {other:?}"),
        }
    }
    pub fn as_i64(&self) -> i64 {
        let n = self.as_f64();
        assert!(n.fract() == 0.0, "expected an integer, got {n}");
        n as i64
    }
    pub fn as_usize(&self) -> usize {
        let n = self.as_i64();
        assert!(n >= 0, "expected a non-negative integer, got {n}");
        n as usize
    }
    pub fn as_bool(&self) -> bool {
        match self {
            Json::Bool(b) => *b,
            other => panic!("expected a bool, got {other:?}"),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("expected a string, got {other:?}"),
        }
    }
    pub fn as_array(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            other => panic!("expected an array, got {other:?}"),
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }
    /// An array of non-negative integers.
    pub fn usize_vec(&self) -> Vec<usize> {
        self.as_array().iter().map(Json::as_usize).collect()
    }
    /// An array of integers.
    pub fn i64_vec(&self) -> Vec<i64> {
        self.as_array().iter().map(Json::as_i64).collect()
    }
    /// An array of numbers.
    pub fn f64_vec(&self) -> Vec<f64> {
        self.as_array().iter().map(Json::as_f64).collect()
    }
    /// A `[h, w]` pair of non-negative integers.
    pub fn usize2(&self) -> [usize; 2] {
        let v = self.usize_vec();
        assert_eq!(v.len(), 2, "expected a pair, got {v:?}");
        [v[0], v[1]]
    }
    /// A `[h, w]` pair of numbers.
    pub fn f64_2(&self) -> [f64; 2] {
        let v = self.f64_vec();
        assert_eq!(v.len(), 2, "expected a pair, got {v:?}");
        [v[0], v[1]]
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("JSON: {what} at byte {}", self.i))
    }
    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&format!("expected '{}'", c as char))
        }
    }
    fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err("unknown literal")
        }
    }
    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'{') => {
                self.i += 1;
                let mut kv = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(kv));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    let v = self.value()?;
                    kv.push((k, v));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(kv));
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(a));
                }
                loop {
                    a.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(a));
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.lit("true", Json::Bool(true)),
            Some(b'f') => self.lit("false", Json::Bool(false)),
            Some(b'n') => self.lit("null", Json::Null),
            // Python's json writes these for non-finite floats.
            Some(b'N') => self.lit("NaN", Json::Num(f64::NAN)),
            Some(b'I') => self.lit("Infinity", Json::Num(f64::INFINITY)),
            Some(_) => {
                if self.s[self.i..].starts_with(b"-Infinity") {
                    self.i += 9;
                    return Ok(Json::Num(f64::NEG_INFINITY));
                }
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                t.parse::<f64>()
                    .map(Json::Num)
                    .or_else(|_| self.err(&format!("bad number {t:?}")))
            }
        }
    }
    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return self.err("expected a string");
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.s.get(self.i) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|e| e.to_string());
                }
                Some(b'\\') => {
                    let c = *self.s.get(self.i + 1).ok_or("JSON: bad escape")?;
                    self.i += 2;
                    let ch = match c {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                // a surrogate pair: \uD8xx\uDCxx
                                if self.s.get(self.i) != Some(&b'\\') {
                                    return self.err("lone surrogate");
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            }
                            char::from_u32(cp).ok_or("JSON: bad code point")?
                        }
                        _ => return self.err("bad escape"),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                Some(&c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .ok_or("JSON: short \\u escape")?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(h).map_err(|e| e.to_string())?, 16)
            .map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------- arrays

/// One stored tensor: its safetensors dtype name (`"F64"`, `"I64"`, `"U8"`, ...), shape and
/// raw little-endian bytes.
#[derive(Clone, Debug)]
pub struct Array {
    pub key: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Array {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_float(&self) -> bool {
        matches!(self.dtype.as_str(), "F64" | "F32" | "F16" | "BF16")
    }
    fn chunks<const N: usize>(&self) -> impl Iterator<Item = [u8; N]> + '_ {
        self.bytes.chunks_exact(N).map(|c| c.try_into().unwrap())
    }
    /// Every element as f64 (exact for all stored dtypes except huge I64).
    pub fn to_f64(&self) -> Vec<f64> {
        match self.dtype.as_str() {
            "F64" => self.chunks::<8>().map(f64::from_le_bytes).collect(),
            "F32" => self
                .chunks::<4>()
                .map(|b| f32::from_le_bytes(b) as f64)
                .collect(),
            "F16" => self.to_u16().into_iter().map(f16_bits_to_f64).collect(),
            "BF16" => self
                .to_u16()
                .into_iter()
                .map(|b| f32::from_bits((b as u32) << 16) as f64)
                .collect(),
            "I64" => self.to_i64().into_iter().map(|v| v as f64).collect(),
            "U8" | "BOOL" => self.bytes.iter().map(|&v| v as f64).collect(),
            d => panic!("{}: unsupported dtype {d}", self.key),
        }
    }
    /// F32 elements.
    pub fn to_f32(&self) -> Vec<f32> {
        assert_eq!(self.dtype, "F32", "{}: not F32", self.key);
        self.chunks::<4>().map(f32::from_le_bytes).collect()
    }
    /// I64 elements.
    pub fn to_i64(&self) -> Vec<i64> {
        assert_eq!(self.dtype, "I64", "{}: not I64", self.key);
        self.chunks::<8>().map(i64::from_le_bytes).collect()
    }
    /// U8 / BOOL elements.
    pub fn to_u8(&self) -> Vec<u8> {
        assert!(
            matches!(self.dtype.as_str(), "U8" | "BOOL"),
            "{}: not U8",
            self.key
        );
        self.bytes.clone()
    }
    /// The raw bits of F16 / BF16 elements.
    pub fn to_u16(&self) -> Vec<u16> {
        assert!(
            matches!(self.dtype.as_str(), "F16" | "BF16"),
            "{}: not a 16-bit float",
            self.key
        );
        self.chunks::<2>().map(u16::from_le_bytes).collect()
    }
}

/// IEEE half-precision bits to f64 (exact).
pub fn f16_bits_to_f64(b: u16) -> f64 {
    let sign = if b & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((b >> 10) & 0x1f) as i32;
    let man = (b & 0x3ff) as f64;
    sign * match exp {
        0 => man * 2f64.powi(-24),
        31 if man == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + man / 1024.0) * 2f64.powi(e - 15),
    }
}

// ---------------------------------------------------------------------------------- files

/// A loaded fixture file.
#[derive(Debug)]
pub struct Fixtures {
    pub path: PathBuf,
    arrays: BTreeMap<String, Array>,
    metadata: BTreeMap<String, String>,
}

impl Fixtures {
    /// Finds `tests/fixtures/<name>` in the including crate's directory or one of its parents
    /// (the workspace root) and loads it; panics with the path on failure.
    pub fn open(name: &str) -> Fixtures {
        let start = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in start.ancestors() {
            let p = dir.join("tests").join("fixtures").join(name);
            if p.is_file() {
                return Self::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
        }
        panic!(
            "fixture file tests/fixtures/{name} not found above {} \
             (regenerate with `python scripts/gen_fixtures.py`)",
            start.display()
        )
    }

    /// Loads and validates a safetensors file.
    pub fn load(path: &Path) -> Result<Fixtures, String> {
        let data = std::fs::read(path).map_err(|e| e.to_string())?;
        Self::parse(&data).map(|(arrays, metadata)| Fixtures {
            path: path.to_path_buf(),
            arrays,
            metadata,
        })
    }

    #[allow(clippy::type_complexity)]
    fn parse(data: &[u8]) -> Result<(BTreeMap<String, Array>, BTreeMap<String, String>), String> {
        let n = u64::from_le_bytes(
            data.get(..8)
                .ok_or("file shorter than 8 bytes")?
                .try_into()
                .unwrap(),
        ) as usize;
        let head = data.get(8..8 + n).ok_or("header runs past the end")?;
        let body = &data[8 + n..];
        let header = Json::parse(std::str::from_utf8(head).map_err(|e| e.to_string())?)?;
        let Json::Obj(entries) = header else {
            return Err("header is not a JSON object".into());
        };
        let mut arrays = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (key, v) in entries {
            if key == "__metadata__" {
                let Json::Obj(kv) = v else {
                    return Err("__metadata__ is not an object".into());
                };
                for (k, v) in kv {
                    metadata.insert(k, v.as_str().to_string());
                }
                continue;
            }
            let dtype = v.get("dtype").ok_or("missing dtype")?.as_str().to_string();
            let shape = v.get("shape").ok_or("missing shape")?.usize_vec();
            let off = v
                .get("data_offsets")
                .ok_or("missing data_offsets")?
                .usize_vec();
            let size = match dtype.as_str() {
                "F64" | "I64" | "U64" => 8,
                "F32" | "I32" | "U32" => 4,
                "F16" | "BF16" | "I16" | "U16" => 2,
                "U8" | "I8" | "BOOL" => 1,
                d => return Err(format!("{key}: unknown dtype {d}")),
            };
            if off.len() != 2
                || off[0] > off[1]
                || off[1] > body.len()
                || off[1] - off[0] != size * shape.iter().product::<usize>()
            {
                return Err(format!(
                    "{key}: bad data_offsets {off:?} for {dtype} {shape:?}"
                ));
            }
            let bytes = body[off[0]..off[1]].to_vec();
            arrays.insert(
                key.clone(),
                Array {
                    key,
                    dtype,
                    shape,
                    bytes,
                },
            );
        }
        Ok((arrays, metadata))
    }

    /// The tensor stored under `key` (`<case>.<name>`), if any.
    pub fn try_get(&self, key: &str) -> Option<&Array> {
        self.arrays.get(key)
    }
    /// The tensor stored under `key`; panics naming the key if it is missing.
    pub fn get(&self, key: &str) -> &Array {
        self.try_get(key)
            .unwrap_or_else(|| panic!("{}: no tensor {key:?}", self.path.display()))
    }
    /// All keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.arrays.keys().map(String::as_str)
    }
    /// The raw metadata map.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
    /// Names of all cases (the part of the keys before the first '.'), sorted.
    pub fn case_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .arrays
            .keys()
            .filter_map(|k| k.split_once('.').map(|(c, _)| c.to_string()))
            .collect();
        v.dedup();
        v
    }
    /// One case by name; panics if the file has no tensor for it.
    pub fn case(&self, name: &str) -> Case<'_> {
        let prefix = format!("{name}.");
        assert!(
            self.arrays.keys().any(|k| k.starts_with(&prefix)),
            "{}: no case {name:?}",
            self.path.display()
        );
        let params = match self.metadata.get(name) {
            Some(s) => Json::parse(s).unwrap_or_else(|e| panic!("{name}: metadata: {e}")),
            None => Json::Obj(Vec::new()),
        };
        Case {
            fx: self,
            name: name.to_string(),
            params,
        }
    }
    /// Every case whose metadata has `"op": op`.
    pub fn cases_with_op(&self, op: &str) -> Vec<Case<'_>> {
        self.case_names()
            .iter()
            .map(|n| self.case(n))
            .filter(|c| c.op() == Some(op))
            .collect()
    }
}

/// One case: its tensors and its JSON parameters.
#[derive(Debug)]
pub struct Case<'a> {
    pub fx: &'a Fixtures,
    pub name: String,
    params: Json,
}

impl<'a> Case<'a> {
    /// The tensor `<case>.<name>`; panics if missing.
    pub fn get(&self, name: &str) -> &'a Array {
        self.fx.get(&format!("{}.{name}", self.name))
    }
    pub fn try_get(&self, name: &str) -> Option<&'a Array> {
        self.fx.try_get(&format!("{}.{name}", self.name))
    }
    pub fn has(&self, name: &str) -> bool {
        self.try_get(name).is_some()
    }
    /// The names (without the case prefix) of this case's tensors.
    pub fn names(&self) -> Vec<&'a str> {
        let prefix = format!("{}.", self.name);
        self.fx
            .keys()
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .collect()
    }
    /// The case's parameters (a JSON object; empty if the file has none).
    pub fn params(&self) -> &Json {
        &self.params
    }
    /// A required parameter; panics naming the case if missing.
    pub fn param(&self, key: &str) -> &Json {
        self.params
            .get(key)
            .unwrap_or_else(|| panic!("{}: no parameter {key:?}", self.name))
    }
    /// The `"op"` parameter.
    pub fn op(&self) -> Option<&str> {
        self.params.get("op").map(Json::as_str)
    }
    /// Inputs that have a stored gradient (`"grads"`).
    pub fn grad_inputs(&self) -> Vec<String> {
        self.params
            .get("grads")
            .map(|g| {
                g.as_array()
                    .iter()
                    .map(|s| s.as_str().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}
