//! Divisors of a size, for the binding's `Largest { divisor_of, .. }` rule.
//!
//! A size can be any positive `i64` (a billion-token context, or a mistyped `2^62`), so the divisors come from a
//! factorisation (trial division by small primes, then Miller–Rabin and Pollard's rho for what is left) rather
//! than from testing every integer below the size: the cost is at most milliseconds whatever the size.

/// Every divisor of `n` (> 0), largest first.
pub fn divisors_desc(n: u64) -> Vec<u64> {
    assert!(n > 0, "divisors of 0");
    let mut factors = Vec::new();
    factor(n, &mut factors);
    factors.sort_unstable();
    let mut divs = vec![1u64];
    let mut i = 0;
    while i < factors.len() {
        let p = factors[i];
        let mut k = 0;
        while i < factors.len() && factors[i] == p {
            k += 1;
            i += 1;
        }
        let base = divs.len();
        let mut pk = 1u64;
        for _ in 0..k {
            pk *= p;
            for j in 0..base {
                divs.push(divs[j] * pk);
            }
        }
    }
    divs.sort_unstable_by(|a, b| b.cmp(a));
    divs
}

/// Prime factors of `n` with multiplicity, in no particular order.
fn factor(mut n: u64, out: &mut Vec<u64>) {
    for p in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        while n % p == 0 {
            out.push(p);
            n /= p;
        }
    }
    let mut stack = vec![n];
    while let Some(m) = stack.pop() {
        if m == 1 {
            continue;
        }
        if is_prime(m) {
            out.push(m);
            continue;
        }
        let d = rho(m);
        stack.push(d);
        stack.push(m / d);
    }
}

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    ((a as u128 * b as u128) % m as u128) as u64
}

fn pow_mod(mut a: u64, mut e: u64, m: u64) -> u64 {
    let mut r = 1u64 % m;
    a %= m;
    while e > 0 {
        if e & 1 == 1 {
            r = mul_mod(r, a, m);
        }
        a = mul_mod(a, a, m);
        e >>= 1;
    }
    r
}

/// Deterministic Miller–Rabin for 64-bit integers (these bases are exact below 2^64).
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for p in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        if n % p == 0 {
            return n == p;
        }
    }
    let (mut d, mut s) = (n - 1, 0);
    while d % 2 == 0 {
        d /= 2;
        s += 1;
    }
    'bases: for a in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        let mut x = pow_mod(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul_mod(x, x, n);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A non-trivial factor of the composite, odd `n` (Pollard's rho with Brent's cycle finding; deterministic: the
/// constant steps through 1, 2, 3, ... until a factor appears).
fn rho(n: u64) -> u64 {
    for c in 1u64.. {
        let f = |x: u64| (mul_mod(x, x, n) + c) % n;
        let (mut x, mut y, mut d) = (2u64, 2u64, 1u64);
        while d == 1 {
            x = f(x);
            y = f(f(y));
            d = gcd(x.abs_diff(y), n);
        }
        if d != n {
            return d;
        }
    }
    unreachable!("some constant finds a factor of a composite")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(n: u64) -> Vec<u64> {
        (1..=n).rev().filter(|d| n % d == 0).collect()
    }

    #[test]
    fn matches_trial_division() {
        for n in 1..2000 {
            assert_eq!(divisors_desc(n), naive(n), "{n}");
        }
    }

    #[test]
    fn large_sizes_are_fast_and_exact() {
        assert_eq!(divisors_desc(1 << 54).len(), 55);
        // A prime near 2^62 and a product of two large primes.
        let p = 4_611_686_018_427_387_847u64; // 2^62 - 57, prime
        assert_eq!(divisors_desc(p), vec![p, 1]);
        let (a, b) = (4_294_967_291u64, 4_294_967_279u64); // primes below 2^32
        assert_eq!(divisors_desc(a * b), vec![a * b, a, b, 1]);
        assert_eq!(divisors_desc(i64::MAX as u64).len(), 96); // 7^2 · 73 · 127 · 337 · 92737 · 649657
    }
}
