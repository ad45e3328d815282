//! The RON layer: deserialise a workload or model file and find where each of its values sits in the text.
//!
//! `ron` does the real parsing, so syntax errors and missing fields come with ron's own wording and position.
//! Ron reports no spans for *valid* values, though, and the later semantic checks need to underline a single rank
//! size or a single partition entry. So after ron accepts a file, [`locate`] re-scans the text with a small,
//! lenient tokenizer and records a span for every value (the [`Loc`] tree). Keeping the two apart means the
//! locator never has to diagnose anything: it only runs on text ron already accepted, and any confusion just
//! degrades to a coarser span.

use crate::diag::{Diagnostic, SourceFile, Span};
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

/// A RON map kept as an ordered list of entries, so that duplicate keys can be reported (a `BTreeMap` would
/// silently keep the last) and the printer can keep the author's order.
#[derive(Debug)]
pub(crate) struct Entries<V>(pub Vec<(String, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map such as { \"name\": value, ... }")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, V>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

/// A workload file as written, before any checking.
#[derive(Debug, Deserialize)]
#[serde(rename = "Cascade", deny_unknown_fields)]
pub(crate) struct RawCascade {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub params: Entries<RawParam>,
    pub ranks: Entries<String>,
    #[serde(default)]
    pub partitions: Entries<Vec<String>>,
    #[serde(default)]
    pub broadcast: Vec<String>,
    /// Inclusive bounds of parameters (`"token_prune": (0, 99)`): a value outside is an invalid configuration.
    #[serde(default)]
    pub limits: Entries<(i64, i64)>,
    pub einsums: String,
}

/// A cascade parameter's default as written: an integer (`"seq": 1024`), or a size expression in quotes over
/// parameters declared before it (`"q_len": "seq"`), which the parameter then follows unless it is set itself.
#[derive(Debug)]
pub(crate) enum RawParam {
    Value(i64),
    Follows(String),
}

impl<'de> Deserialize<'de> for RawParam {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawParam;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer, or a size expression over earlier parameters in quotes")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawParam, E> {
                Ok(RawParam::Value(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawParam, E> {
                i64::try_from(v)
                    .map(RawParam::Value)
                    .map_err(|_| E::custom(format!("{v} is too large for a parameter")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawParam, E> {
                Ok(RawParam::Follows(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A model-shape file as written.
#[derive(Debug, Deserialize)]
#[serde(rename = "Model", deny_unknown_fields)]
pub(crate) struct RawModel {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub source: String,
    pub params: Entries<i64>,
}

/// Deserialise with ron, turning its error into a diagnostic that points at ron's position.
pub(crate) fn parse_ron<T: DeserializeOwned>(file: &SourceFile) -> Result<T, Diagnostic> {
    parse_ron_as(file, "`Cascade(...)` or `Model(...)`")
}

/// Parse any RON file of einsim's (`expected` names its top-level struct for an empty file), turning ron's
/// errors into located diagnostics that say what was expected.
pub fn parse_ron_as<T: DeserializeOwned>(
    file: &SourceFile,
    expected: &str,
) -> Result<T, Diagnostic> {
    let text = &file.text;
    if locate_is_empty(text) {
        return Err(Diagnostic::new(
            Span::new(0, 0),
            "empty file",
            format!("expected {expected}"),
        ));
    }
    ron::Options::default().from_str::<T>(text).map_err(|e| {
        let start = offset_of(text, e.span.start.line, e.span.start.col);
        let end = offset_of(text, e.span.end.line, e.span.end.col).max(start);
        let (message, label) = describe(&e.code);
        let span = match e.code {
            // Ron's span for a missing field covers the whole struct: point at its closing `)`.
            ron::Error::MissingStructField { .. } => {
                let mut at = end.saturating_sub(1);
                while text.as_bytes().get(at).is_some_and(u8::is_ascii_whitespace) {
                    at += 1;
                }
                Span::new(at, next_char_end(text, at))
            }
            // Ron notices a missing comma at the next token; the comma belongs after the previous one.
            ron::Error::ExpectedComma => {
                let before = text.get(..start).unwrap_or("").trim_end();
                let last = before.chars().next_back().map_or(0, char::len_utf8);
                Span::new(before.len() - last, before.len())
            }
            _ if end == start => Span::new(start, next_char_end(text, start)),
            _ => Span::new(start, end),
        };
        Diagnostic::new(span, message, label)
    })
}

/// Only whitespace and comments.
fn locate_is_empty(text: &str) -> bool {
    tokenize(text).is_empty()
}

/// Ron's error as (message, label): the message names the problem, the label what was expected there.
fn describe(code: &ron::Error) -> (String, String) {
    use ron::Error as E;
    let lower = |s: String| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_lowercase().chain(c).collect())
            .unwrap_or_default()
    };
    match code {
        E::Eof => (
            "unexpected end of file".into(),
            "expected more input here".into(),
        ),
        E::MissingStructField { field, .. } => (
            format!("missing field `{field}`"),
            format!("expected a field `{field}: ...` before this `)`"),
        ),
        E::NoSuchStructField {
            expected, found, ..
        } => (
            format!("unknown field `{found}`"),
            format!(
                "expected one of {}",
                expected
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        E::DuplicateStructField { field, .. } => (
            format!("field `{field}` given twice"),
            "expected each field once".into(),
        ),
        E::ExpectedDifferentStructName { expected, found } => (
            format!("expected `{expected}(...)`, found `{found}`"),
            format!("expected `{expected}`"),
        ),
        E::ExpectedComma => (
            "syntax error: expected `,`".into(),
            "expected `,` here".into(),
        ),
        E::TrailingCharacters => (
            "unexpected text after the end of the file's value".into(),
            "expected nothing after the closing `)`".into(),
        ),
        E::InvalidValueForType { expected, found } => (
            format!("expected {expected}, found {found}"),
            format!("expected {expected}"),
        ),
        other => {
            let msg = lower(other.to_string());
            (format!("syntax error: {msg}"), msg)
        }
    }
}

/// Byte offset of ron's 1-based (line, column-in-chars) position, clamped to the text.
fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let content = l.strip_suffix('\n').unwrap_or(l);
            return off
                + content
                    .char_indices()
                    .nth(col.saturating_sub(1))
                    .map_or(content.len(), |(b, _)| b);
        }
        off += l.len();
    }
    text.len()
}

fn next_char_end(text: &str, at: usize) -> usize {
    text.get(at..)
        .and_then(|s| s.chars().next())
        .map_or(at, |c| at + c.len_utf8())
}

/// Where a value sits in the file.
#[derive(Clone, Debug)]
pub(crate) enum Loc {
    /// A string; `content` is the byte offset of its first character when offsets inside it map 1:1 to the file
    /// (a raw string, or a plain string without escapes).
    Str {
        span: Span,
        content: Option<usize>,
    },
    List {
        span: Span,
        items: Vec<Loc>,
    },
    Map {
        span: Span,
        entries: Vec<(Loc, Loc)>,
    },
    /// A struct or tuple: its named fields, and its positional values in order (`("P0", Fixed("cols"))`).
    Struct {
        span: Span,
        fields: Vec<(String, Span, Loc)>,
        items: Vec<Loc>,
    },
    Other {
        span: Span,
    },
}

impl Loc {
    pub fn span(&self) -> Span {
        match self {
            Loc::Str { span, .. }
            | Loc::List { span, .. }
            | Loc::Map { span, .. }
            | Loc::Struct { span, .. }
            | Loc::Other { span } => *span,
        }
    }
    /// A field of a struct: (span of the field name, its value).
    pub fn field(&self, name: &str) -> Option<(Span, &Loc)> {
        match self {
            Loc::Struct { fields, .. } => fields
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, s, l)| (*s, l)),
            _ => None,
        }
    }
    /// The `i`-th entry of a map: (key, value).
    pub fn entry(&self, i: usize) -> Option<(&Loc, &Loc)> {
        match self {
            Loc::Map { entries, .. } => entries.get(i).map(|(k, v)| (k, v)),
            _ => None,
        }
    }
    /// The `i`-th item of a list, or the `i`-th positional value of a struct or tuple.
    pub fn item(&self, i: usize) -> Option<&Loc> {
        match self {
            Loc::List { items, .. } | Loc::Struct { items, .. } => items.get(i),
            _ => None,
        }
    }
}

/// Maps spans inside a string value (relative to the string's content) to file spans.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TextLoc {
    base: usize,
    /// When offsets do not map 1:1 (escapes, or the value could not be located), every span becomes this one.
    whole: Option<Span>,
}

impl TextLoc {
    /// Locate `value` (the deserialised string) at `loc`; falls back to `fallback` when it cannot be mapped exactly.
    pub fn new(text: &str, loc: Option<&Loc>, value: &str, fallback: Span) -> TextLoc {
        if let Some(Loc::Str { span, content }) = loc {
            if let Some(c) = content {
                if c.checked_add(value.len()).and_then(|e| text.get(*c..e)) == Some(value) {
                    return TextLoc {
                        base: *c,
                        whole: None,
                    };
                }
            }
            return TextLoc {
                base: 0,
                whole: Some(*span),
            };
        }
        TextLoc {
            base: 0,
            whole: Some(loc.map_or(fallback, Loc::span)),
        }
    }
    pub fn map(&self, s: Span) -> Span {
        self.whole.unwrap_or_else(|| s.offset(self.base))
    }
}

/// Re-scan text ron accepted and record the span of every value. Never fails; returns `None` if the top level
/// is not recognisable (then callers use coarse spans).
pub(crate) fn locate(text: &str) -> Option<Loc> {
    let toks = tokenize(text);
    let mut p = Locator {
        toks: &toks,
        i: 0,
        depth: 0,
    };
    p.value()
}

#[derive(Clone, Debug, PartialEq)]
enum T {
    Ident(String),
    Str(Option<usize>),
    Punct(char),
    Atom,
}

fn tokenize(text: &str) -> Vec<(T, Span)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0usize;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'"' {
            i += 1;
            let mut escaped = false;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    escaped = true;
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(b.len());
            out.push((T::Str((!escaped).then_some(start + 1)), Span::new(start, i)));
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#')) {
            let mut j = i + 1;
            while j < b.len() && b[j] == b'#' {
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                // `r#ident`: a raw identifier.
                i = j;
                continue;
            }
            let hashes = j - i - 1;
            let content = j + 1;
            let mut k = content;
            let mut end = b.len();
            while k < b.len() {
                if b[k] == b'"'
                    && b.len() >= k + 1 + hashes
                    && b[k + 1..k + 1 + hashes].iter().all(|&h| h == b'#')
                {
                    end = k + 1 + hashes;
                    break;
                }
                k += 1;
            }
            i = end;
            out.push((T::Str(Some(content)), Span::new(start, end)));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((
                T::Ident(text.get(start..i).unwrap_or("").to_string()),
                Span::new(start, i),
            ));
        } else if c.is_ascii_digit() || c == b'-' || c == b'+' || c == b'.' {
            i += 1;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'+' | b'-'))
            {
                i += 1;
            }
            out.push((T::Atom, Span::new(start, i)));
        } else if c.is_ascii() {
            i += 1;
            out.push((T::Punct(c as char), Span::new(start, i)));
        } else {
            // Skip a whole multi-byte character (ron would have rejected it outside strings anyway).
            i += text
                .get(i..)
                .and_then(|s| s.chars().next())
                .map_or(1, char::len_utf8);
        }
    }
    out
}

struct Locator<'a> {
    toks: &'a [(T, Span)],
    i: usize,
    depth: usize,
}

impl Locator<'_> {
    fn peek(&self) -> Option<&(T, Span)> {
        self.toks.get(self.i)
    }
    fn punct(&self, c: char) -> bool {
        matches!(self.peek(), Some((T::Punct(p), _)) if *p == c)
    }
    fn eat_punct(&mut self, c: char) -> bool {
        let hit = self.punct(c);
        if hit {
            self.i += 1;
        }
        hit
    }
    fn last_end(&self) -> u32 {
        self.i
            .checked_sub(1)
            .and_then(|j| self.toks.get(j))
            .map_or(0, |(_, s)| s.end)
    }
    fn value(&mut self) -> Option<Loc> {
        self.depth += 1;
        if self.depth > 64 {
            return None;
        }
        // Skip `#![enable(...)]` attributes.
        while self.punct('#') {
            while self.i < self.toks.len() && !self.eat_punct(']') {
                self.i += 1;
            }
        }
        let (tok, span) = self.peek()?.clone();
        self.i += 1;
        let out = match tok {
            T::Str(content) => Loc::Str { span, content },
            T::Atom => Loc::Other { span },
            T::Punct('[') => {
                let mut items = Vec::new();
                while !self.eat_punct(']') {
                    items.push(self.value()?);
                    self.eat_punct(',');
                }
                Loc::List {
                    span: Span {
                        start: span.start,
                        end: self.last_end(),
                    },
                    items,
                }
            }
            T::Punct('{') => {
                let mut entries = Vec::new();
                while !self.eat_punct('}') {
                    let k = self.value()?;
                    if !self.eat_punct(':') {
                        return None;
                    }
                    let v = self.value()?;
                    entries.push((k, v));
                    self.eat_punct(',');
                }
                Loc::Map {
                    span: Span {
                        start: span.start,
                        end: self.last_end(),
                    },
                    entries,
                }
            }
            T::Ident(_) | T::Punct('(') => {
                if matches!(tok, T::Ident(_)) && !self.eat_punct('(') {
                    self.depth -= 1;
                    return Some(Loc::Other { span });
                }
                let mut fields = Vec::new();
                let mut items = Vec::new();
                while !self.eat_punct(')') {
                    match self.peek()?.clone() {
                        (T::Ident(name), nspan)
                            if matches!(self.toks.get(self.i + 1), Some((T::Punct(':'), _))) =>
                        {
                            self.i += 2;
                            let v = self.value()?;
                            fields.push((name, nspan, v));
                        }
                        _ => items.push(self.value()?),
                    }
                    self.eat_punct(',');
                }
                Loc::Struct {
                    span: Span {
                        start: span.start,
                        end: self.last_end(),
                    },
                    fields,
                    items,
                }
            }
            T::Punct(_) => return None,
        };
        self.depth -= 1;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_fields_and_entries() {
        let text = "Cascade(name: \"x\", ranks: { \"M\": \"seq\", \"M0\": \"4\" }, einsums: r#\"A[m] = B[m]\"#)";
        let loc = locate(text).unwrap();
        let (_, ranks) = loc.field("ranks").unwrap();
        let (k, v) = ranks.entry(1).unwrap();
        assert_eq!(&text[k.span().range()], "\"M0\"");
        assert_eq!(&text[v.span().range()], "\"4\"");
        let (_, e) = loc.field("einsums").unwrap();
        let tl = TextLoc::new(text, Some(e), "A[m] = B[m]", Span::default());
        assert_eq!(&text[tl.map(Span::new(7, 11)).range()], "B[m]");
    }

    #[test]
    fn locates_positional_values_of_tuples() {
        let text = "B(sizes: [(\"P0\", Fixed(\"cols\")), (\"P1\", Largest(fits: \"buffer\"))])";
        let loc = locate(text).unwrap();
        let (_, sizes) = loc.field("sizes").unwrap();
        let rule = sizes.item(0).and_then(|t| t.item(1)).unwrap();
        assert_eq!(&text[rule.item(0).unwrap().span().range()], "\"cols\"");
        let (_, fits) = sizes
            .item(1)
            .and_then(|t| t.item(1))
            .unwrap()
            .field("fits")
            .unwrap();
        assert_eq!(&text[fits.span().range()], "\"buffer\"");
    }

    #[test]
    fn ron_positions_become_offsets() {
        assert_eq!(offset_of("ab\ncdé\nf", 2, 3), 5);
        assert_eq!(offset_of("ab\ncdé\nf", 3, 1), 8);
        assert_eq!(offset_of("ab", 9, 9), 2);
    }
}
