//! Integer size expressions: `seq`, `M / M0`, `head_dim + 2`, `2^20`, `min(P0, seq)`.
//!
//! Rank sizes, partition sizes and arch parameters are written as small expressions over named parameters so that
//! one file serves every sequence length. Expressions are parsed once (with spans relative to the expression text)
//! and evaluated against an environment whenever parameters change.

use crate::diag::Span;
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum SizeExpr {
    Num(i64),
    Name(String, Span),
    Bin(Box<SizeExpr>, SizeOp, Box<SizeExpr>),
    Call(SizeFn, Vec<SizeExpr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeOp {
    Add,
    Sub,
    Mul,
    /// Exact division: an inexact quotient is an evaluation error, so a partition that does not divide its
    /// rank is reported rather than silently truncated.
    Div,
    Pow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeFn {
    Min,
    Max,
    /// `ceil(a, b)` = ⌈a / b⌉.
    Ceil,
    /// `floor(a, b)` = ⌊a / b⌋.
    Floor,
}

/// A problem parsing or evaluating a size expression; the span is relative to the expression text.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprError {
    pub span: Span,
    pub message: String,
    pub expected: String,
}

impl SizeExpr {
    pub fn parse(text: &str) -> Result<SizeExpr, ExprError> {
        let mut p = P {
            s: text.as_bytes(),
            i: 0,
        };
        let e = p.sum()?;
        p.ws();
        if p.i < p.s.len() {
            return Err(p.err(
                "unexpected text after the expression",
                "an operator (+ - * / ^) or the end",
            ));
        }
        Ok(e)
    }

    /// Evaluate with `lookup` resolving names. Overflow, division by zero and inexact division are errors.
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Option<i64>) -> Result<i64, ExprError> {
        match self {
            SizeExpr::Num(n) => Ok(*n),
            SizeExpr::Name(n, span) => lookup(n).ok_or_else(|| ExprError {
                span: *span,
                message: format!("unknown name `{n}`"),
                expected: "a parameter or rank name".into(),
            }),
            SizeExpr::Bin(a, op, b) => {
                let (x, y) = (a.eval(lookup)?, b.eval(lookup)?);
                // The span is found only for an error: finding it walks the expression (a hot path in mapping).
                let span = || self.span();
                let over = || ExprError {
                    span: span(),
                    message: "arithmetic overflow".into(),
                    expected: "a smaller value".into(),
                };
                match op {
                    SizeOp::Add => x.checked_add(y).ok_or_else(over),
                    SizeOp::Sub => x.checked_sub(y).ok_or_else(over),
                    SizeOp::Mul => x.checked_mul(y).ok_or_else(over),
                    SizeOp::Pow => u32::try_from(y)
                        .ok()
                        .and_then(|y| x.checked_pow(y))
                        .ok_or_else(over),
                    SizeOp::Div => {
                        if x == i64::MIN && y == -1 {
                            Err(overflow(span()))
                        } else if y == 0 {
                            Err(ExprError {
                                span: span(),
                                message: "division by zero".into(),
                                expected: "a non-zero divisor".into(),
                            })
                        } else if x % y != 0 {
                            Err(ExprError {
                                span: span(),
                                message: format!("{x} is not divisible by {y}"),
                                expected:
                                    "an exact division (use ceil(a, b) or floor(a, b) to round)"
                                        .into(),
                            })
                        } else {
                            Ok(x / y)
                        }
                    }
                }
            }
            SizeExpr::Call(f, args) => {
                // Every function takes two arguments (checked by the parser).
                let v = [args[0].eval(lookup)?, args[1].eval(lookup)?];
                let span = || self.span();
                match f {
                    SizeFn::Min => Ok(v[0].min(v[1])),
                    SizeFn::Max => Ok(v[0].max(v[1])),
                    SizeFn::Ceil | SizeFn::Floor if v[1] == 0 => Err(ExprError {
                        span: span(),
                        message: "division by zero".into(),
                        expected: "a non-zero divisor".into(),
                    }),
                    // Checked: `i64::MIN / -1` overflows.
                    SizeFn::Ceil => v[0]
                        .checked_div_euclid(v[1])
                        .zip(v[0].checked_rem_euclid(v[1]))
                        .and_then(|(q, r)| q.checked_add(i64::from(r != 0)))
                        .ok_or_else(|| overflow(span())),
                    SizeFn::Floor => v[0]
                        .checked_div_euclid(v[1])
                        .ok_or_else(|| overflow(span())),
                }
            }
        }
    }

    /// The first division that [`SizeExpr::eval`] finds inexact, with its operands and their values, so an error
    /// can say which quantity must be a multiple of which (`P` = 1000 of `P0` = 256) instead of two bare numbers.
    /// Operands are visited in the order `eval` visits them, so this is the division `eval` stopped at.
    pub fn inexact_division(
        &self,
        lookup: &dyn Fn(&str) -> Option<i64>,
    ) -> Option<(&SizeExpr, i64, &SizeExpr, i64)> {
        match self {
            SizeExpr::Num(_) | SizeExpr::Name(..) => None,
            SizeExpr::Bin(a, op, b) => {
                if let Some(d) = a.inexact_division(lookup).or(b.inexact_division(lookup)) {
                    return Some(d);
                }
                let (x, y) = (a.eval(lookup).ok()?, b.eval(lookup).ok()?);
                (*op == SizeOp::Div && y != 0 && x.checked_rem(y).is_some_and(|r| r != 0))
                    .then_some((&**a, x, &**b, y))
            }
            SizeExpr::Call(_, args) => args.iter().find_map(|a| a.inexact_division(lookup)),
        }
    }

    /// Names this expression refers to.
    pub fn names(&self) -> Vec<(&str, Span)> {
        let mut out = Vec::new();
        fn go<'a>(e: &'a SizeExpr, out: &mut Vec<(&'a str, Span)>) {
            match e {
                SizeExpr::Num(_) => {}
                SizeExpr::Name(n, s) => out.push((n, *s)),
                SizeExpr::Bin(a, _, b) => {
                    go(a, out);
                    go(b, out)
                }
                SizeExpr::Call(_, args) => args.iter().for_each(|a| go(a, out)),
            }
        }
        go(self, &mut out);
        out
    }

    /// Best-effort span (names carry spans; numbers do not).
    pub fn span(&self) -> Span {
        self.names()
            .iter()
            .map(|(_, s)| *s)
            .reduce(Span::join)
            .unwrap_or_default()
    }

    /// Shift every span by `offset` (when the expression text sits inside a larger file).
    pub fn offset(&mut self, offset: usize) {
        match self {
            SizeExpr::Num(_) => {}
            SizeExpr::Name(_, s) => *s = s.offset(offset),
            SizeExpr::Bin(a, _, b) => {
                a.offset(offset);
                b.offset(offset)
            }
            SizeExpr::Call(_, args) => args.iter_mut().for_each(|a| a.offset(offset)),
        }
    }
}

impl fmt::Display for SizeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeExpr::Num(n) => write!(f, "{n}"),
            SizeExpr::Name(n, _) => f.write_str(n),
            SizeExpr::Bin(a, op, b) => {
                let o = match op {
                    SizeOp::Add => "+",
                    SizeOp::Sub => "-",
                    SizeOp::Mul => "*",
                    SizeOp::Div => "/",
                    SizeOp::Pow => "^",
                };
                let paren = |e: &SizeExpr, f: &mut fmt::Formatter<'_>| match e {
                    SizeExpr::Bin(..) => write!(f, "({e})"),
                    _ => write!(f, "{e}"),
                };
                paren(a, f)?;
                write!(f, " {o} ")?;
                paren(b, f)
            }
            SizeExpr::Call(func, args) => {
                let n = match func {
                    SizeFn::Min => "min",
                    SizeFn::Max => "max",
                    SizeFn::Ceil => "ceil",
                    SizeFn::Floor => "floor",
                };
                write!(f, "{n}({}, {})", args[0], args[1])
            }
        }
    }
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn err(&self, message: &str, expected: &str) -> ExprError {
        let end = (self.i + 1).min(self.s.len()).max(self.i);
        ExprError {
            span: Span::new(self.i, end),
            message: message.into(),
            expected: expected.into(),
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn sum(&mut self) -> Result<SizeExpr, ExprError> {
        let mut e = self.product()?;
        loop {
            let op = if self.eat(b'+') {
                SizeOp::Add
            } else if self.eat(b'-') {
                SizeOp::Sub
            } else {
                return Ok(e);
            };
            e = SizeExpr::Bin(Box::new(e), op, Box::new(self.product()?));
        }
    }
    fn product(&mut self) -> Result<SizeExpr, ExprError> {
        let mut e = self.power()?;
        loop {
            let op = if self.eat(b'*') {
                SizeOp::Mul
            } else if self.eat(b'/') {
                SizeOp::Div
            } else {
                return Ok(e);
            };
            e = SizeExpr::Bin(Box::new(e), op, Box::new(self.power()?));
        }
    }
    fn power(&mut self) -> Result<SizeExpr, ExprError> {
        let base = self.atom()?;
        if self.eat(b'^') {
            let exp = self.power()?;
            return Ok(SizeExpr::Bin(Box::new(base), SizeOp::Pow, Box::new(exp)));
        }
        Ok(base)
    }
    fn atom(&mut self) -> Result<SizeExpr, ExprError> {
        self.ws();
        let start = self.i;
        match self.s.get(self.i) {
            Some(b'(') => {
                self.i += 1;
                let e = self.sum()?;
                if !self.eat(b')') {
                    return Err(self.err("unclosed parenthesis", "`)`"));
                }
                Ok(e)
            }
            Some(c) if c.is_ascii_digit() => {
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_digit() || self.s[self.i] == b'_')
                {
                    self.i += 1;
                }
                let txt: String = std::str::from_utf8(&self.s[start..self.i])
                    .unwrap_or("")
                    .chars()
                    .filter(|c| *c != '_')
                    .collect();
                txt.parse::<i64>()
                    .map(SizeExpr::Num)
                    .map_err(|_| ExprError {
                        span: Span::new(start, self.i),
                        message: "number too large".into(),
                        expected: "an integer below 2^63".into(),
                    })
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
                {
                    self.i += 1;
                }
                let name = std::str::from_utf8(&self.s[start..self.i])
                    .unwrap_or("")
                    .to_string();
                let func = match name.as_str() {
                    "min" => Some(SizeFn::Min),
                    "max" => Some(SizeFn::Max),
                    "ceil" => Some(SizeFn::Ceil),
                    "floor" => Some(SizeFn::Floor),
                    _ => None,
                };
                if let Some(func) = func {
                    if self.eat(b'(') {
                        let a = self.sum()?;
                        if !self.eat(b',') {
                            return Err(self.err(&format!("`{name}` takes two arguments"), "`,`"));
                        }
                        let b = self.sum()?;
                        if !self.eat(b')') {
                            return Err(self.err("unclosed parenthesis", "`)`"));
                        }
                        return Ok(SizeExpr::Call(func, vec![a, b]));
                    }
                }
                Ok(SizeExpr::Name(name, Span::new(start, self.i)))
            }
            _ => Err(self.err(
                "expected a number, a name or `(`",
                "a size expression such as `seq` or `M / M0`",
            )),
        }
    }
}

fn overflow(span: Span) -> ExprError {
    ExprError {
        span,
        message: "arithmetic overflow".into(),
        expected: "a smaller value".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn ev(s: &str) -> Result<i64, ExprError> {
        SizeExpr::parse(s)?.eval(&|n| match n {
            "seq" => Some(1024),
            "M0" => Some(256),
            _ => None,
        })
    }
    #[test]
    fn evaluates() {
        assert_eq!(ev("seq / M0").unwrap(), 4);
        assert_eq!(ev("2^20").unwrap(), 1 << 20);
        assert_eq!(ev("(seq + 1) * 2 - 2").unwrap(), 2048);
        assert_eq!(ev("ceil(seq, 300)").unwrap(), 4);
        assert_eq!(ev("min(seq, M0)").unwrap(), 256);
        assert!(ev("seq / 3").is_err());
        assert!(ev("nope").is_err());
        assert!(ev("1 +").is_err());
        assert!(ev("2^70").is_err());
        assert!(ev("floor(0 - 9223372036854775807 - 1, 0 - 1)").is_err());
        assert!(ev("ceil(0 - 9223372036854775807 - 1, 0 - 1)").is_err());
        assert!(ev("(0 - 9223372036854775807 - 1) / (0 - 1)").is_err());
    }
    #[test]
    fn finds_the_inexact_division() {
        let lookup = |n: &str| match n {
            "seq" => Some(1000),
            "M0" => Some(256),
            _ => None,
        };
        // 1000 / 8 and 1024 / 256 divide; the third division is the one `eval` stops at.
        let e = SizeExpr::parse("min(seq / 8, (seq + 24) / M0) + seq / M0").unwrap();
        let (a, x, b, y) = e.inexact_division(&lookup).unwrap();
        assert_eq!(
            (a.to_string(), x, b.to_string(), y),
            ("seq".into(), 1000, "M0".into(), 256)
        );
        let e = SizeExpr::parse("(seq / 3) / 7").unwrap();
        let (a, x, b, y) = e.inexact_division(&lookup).unwrap();
        assert_eq!(
            (a.to_string(), x, b.to_string(), y),
            ("seq".into(), 1000, "3".into(), 3)
        );
        assert!(SizeExpr::parse("seq / 8")
            .unwrap()
            .inexact_division(&lookup)
            .is_none());
    }
    #[test]
    fn prints_round_trip() {
        for s in ["seq / M0", "(seq + 1) * 2", "min(seq, 4)", "2 ^ 20"] {
            let e = SizeExpr::parse(s).unwrap();
            assert_eq!(
                SizeExpr::parse(&e.to_string()).unwrap().to_string(),
                e.to_string()
            );
        }
    }
}
