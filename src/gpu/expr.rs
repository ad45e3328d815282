//! Real-valued figure expressions for GPU files: `2250e12 / (148 * 8192)`, `M * N * (1 - emu)`,
//! `if(causal, 0.125, 0.1875)`. GPU figures are rates and fractions (a derived clock, an emulated fraction), which
//! the exact-integer `SizeExpr` of cascades cannot hold; tile sizes built from them are checked to be integers
//! where they must be.
//!
//! Grammar: comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`, giving 1 or 0) over sums over products over powers
//! (`^`, right-associative) over unary minus, numbers (`1.5`, `2e9`), names, `(…)` and calls `min`, `max`,
//! `ceil`, `floor`, `if(cond, then, else)`.

use std::collections::BTreeMap;

/// Why an expression did not evaluate: a message, the byte offset in the expression it is about, and its cause.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprError {
    pub message: String,
    pub at: usize,
    pub cause: Cause,
}

/// What an error is owed to, for checks that judge an expression without its real values (`einsim check`).
#[derive(Clone, Debug, PartialEq)]
pub enum Cause {
    /// The text: a syntax error, a bad number, an unknown function, a wrong argument count.
    Text,
    /// A name with no value here.
    Unknown(String),
    /// The values: a division by zero, a result that is not finite.
    Value,
}

/// Evaluate `text` with the names in `vars`.
pub fn eval(text: &str, vars: &BTreeMap<String, f64>) -> Result<f64, ExprError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        vars,
    };
    let v = p.cmp()?;
    p.ws();
    if p.i < p.s.len() {
        return Err(p.err(format!("unexpected `{}`", p.char_here())));
    }
    if !v.is_finite() {
        return Err(ExprError {
            message: "the value is not finite (a division by zero?)".into(),
            at: 0,
            cause: Cause::Value,
        });
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    vars: &'a BTreeMap<String, f64>,
}

impl Parser<'_> {
    /// The character at the cursor, whole (a multi-byte `×` is not its first byte).
    fn char_here(&self) -> char {
        std::str::from_utf8(&self.s[self.i..])
            .ok()
            .and_then(|t| t.chars().next())
            .unwrap_or('?')
    }
    fn err(&self, message: String) -> ExprError {
        ExprError {
            message,
            at: self.i,
            cause: Cause::Text,
        }
    }
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }
    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(tok.as_bytes()) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }
    fn cmp(&mut self) -> Result<f64, ExprError> {
        let a = self.add()?;
        for (tok, f) in [
            ("==", (|a, b| a == b) as fn(f64, f64) -> bool),
            ("!=", |a, b| a != b),
            ("<=", |a, b| a <= b),
            (">=", |a, b| a >= b),
            ("<", |a, b| a < b),
            (">", |a, b| a > b),
        ] {
            if self.eat(tok) {
                let b = self.add()?;
                return Ok(if f(a, b) { 1.0 } else { 0.0 });
            }
        }
        Ok(a)
    }
    fn add(&mut self) -> Result<f64, ExprError> {
        let mut v = self.mul()?;
        loop {
            if self.eat("+") {
                v += self.mul()?;
            } else if self.eat("-") {
                v -= self.mul()?;
            } else {
                return Ok(v);
            }
        }
    }
    fn mul(&mut self) -> Result<f64, ExprError> {
        let mut v = self.unary()?;
        loop {
            if self.eat("*") {
                v *= self.unary()?;
            } else if self.eat("/") {
                let at = self.i;
                let d = self.unary()?;
                if d == 0.0 {
                    return Err(ExprError {
                        message: "division by zero".into(),
                        at,
                        cause: Cause::Value,
                    });
                }
                v /= d;
            } else {
                return Ok(v);
            }
        }
    }
    fn unary(&mut self) -> Result<f64, ExprError> {
        if self.eat("-") {
            return Ok(-self.unary()?);
        }
        let base = self.atom()?;
        if self.eat("^") {
            return Ok(base.powf(self.unary()?));
        }
        Ok(base)
    }
    fn atom(&mut self) -> Result<f64, ExprError> {
        self.ws();
        let start = self.i;
        let Some(&c) = self.s.get(self.i) else {
            return Err(self.err("expected a number, a name or `(`".into()));
        };
        if self.eat("(") {
            let v = self.cmp()?;
            if !self.eat(")") {
                return Err(self.err("expected `)`".into()));
            }
            return Ok(v);
        }
        if c.is_ascii_digit() || c == b'.' {
            while self
                .s
                .get(self.i)
                .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
            {
                self.i += 1;
            }
            if self.s.get(self.i).is_some_and(|c| *c == b'e' || *c == b'E') {
                self.i += 1;
                if self.s.get(self.i).is_some_and(|c| *c == b'-' || *c == b'+') {
                    self.i += 1;
                }
                while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
            }
            let t = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            return t.parse().map_err(|_| ExprError {
                message: format!("`{t}` is not a number"),
                at: start,
                cause: Cause::Text,
            });
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while self
                .s
                .get(self.i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                self.i += 1;
            }
            let name = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            if self.eat("(") {
                let mut args = vec![self.cmp()?];
                while self.eat(",") {
                    args.push(self.cmp()?);
                }
                if !self.eat(")") {
                    return Err(self.err("expected `,` or `)`".into()));
                }
                let bad = |n: usize| ExprError {
                    message: format!("`{name}` takes {n} argument(s), got {}", args.len()),
                    at: start,
                    cause: Cause::Text,
                };
                return match (name, args.as_slice()) {
                    ("min", [a, b]) => Ok(a.min(*b)),
                    ("max", [a, b]) => Ok(a.max(*b)),
                    ("ceil", [a]) => Ok(a.ceil()),
                    ("floor", [a]) => Ok(a.floor()),
                    ("if", [c, a, b]) => Ok(if *c != 0.0 { *a } else { *b }),
                    ("min" | "max", _) => Err(bad(2)),
                    ("ceil" | "floor", _) => Err(bad(1)),
                    ("if", _) => Err(bad(3)),
                    _ => Err(ExprError {
                        message: format!(
                            "unknown function `{name}` (known: min, max, ceil, floor, if)"
                        ),
                        at: start,
                        cause: Cause::Text,
                    }),
                };
            }
            return self.vars.get(name).copied().ok_or_else(|| {
                let known: Vec<&str> = self.vars.keys().map(String::as_str).collect();
                ExprError {
                    message: format!("unknown name `{name}` (known here: {})", known.join(", ")),
                    at: start,
                    cause: Cause::Unknown(name.to_string()),
                }
            });
        }
        Err(self.err(format!("unexpected `{}`", self.char_here())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn arithmetic_and_names() {
        let vars = v(&[("M", 128.0), ("N", 128.0), ("emu", 0.25)]);
        assert_eq!(eval("M * N * (1 - emu)", &vars), Ok(12288.0));
        assert_eq!(eval("2^3^2", &vars), Ok(512.0));
        assert_eq!(eval("-2 + 3 * 4", &vars), Ok(10.0));
        assert_eq!(
            eval("2250e12 / (148 * 8192)", &vars).map(|x| x.round()),
            Ok(1855798670.0)
        );
        assert_eq!(
            eval("if(M == 128, 1, 2) + max(1, ceil(0.5))", &vars),
            Ok(2.0)
        );
        assert_eq!(eval("N >= 256", &vars), Ok(0.0));
    }

    #[test]
    fn errors_say_where() {
        let vars = v(&[("M", 1.0)]);
        assert_eq!(eval("M + X", &vars).unwrap_err().at, 4);
        assert!(eval("1 / (M - 1)", &vars)
            .unwrap_err()
            .message
            .contains("division"));
        assert!(eval("(1 + 2", &vars).is_err());
        assert!(eval("1 2", &vars).is_err());
        assert_eq!(eval("2 × M", &vars).unwrap_err().message, "unexpected `×`");
        assert!(eval("sqrt(2)", &vars)
            .unwrap_err()
            .message
            .contains("unknown function"));
        assert!(eval("", &vars).is_err());
    }
}
