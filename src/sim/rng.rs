//! Deterministic pseudo-random numbers, and the few transcendental functions the simulator
//! needs, built only from IEEE-754 basic operations (`+ - * /`, `sqrt`, `round`), which are
//! correctly rounded everywhere: the output never depends on the platform's `libm`.

use std::f64::consts::{LN_2, LOG2_E, PI, SQRT_2, TAU};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64: a bijective 64-bit mixer (Steele, Lea & Flood), used for seeding and hashing.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit key from a seed and a path of integers (device, day, purpose...).
pub(crate) fn key(seed: u64, parts: &[u64]) -> u64 {
    let mut h = splitmix64(seed);
    for &p in parts {
        h = splitmix64(h ^ p);
    }
    h
}

/// A uniform number in `[0, 1)` from a 64-bit hash.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
    /// The second normal of the last polar draw.
    spare: Option<f64>,
}

impl Rng {
    /// A generator for one key (see [`key`]).
    pub(crate) fn new(key: u64) -> Rng {
        let mut s = [0u64; 4];
        let mut x = key;
        for v in &mut s {
            *v = splitmix64(x);
            x = x.wrapping_add(GOLDEN);
        }
        Rng { s, spare: None }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn f64(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in `0..n` (`n > 0`), by the multiply-high method.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal, by Marsaglia's polar form of Box-Muller (no trigonometry).
    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.f64() - 1.0;
            let v = 2.0 * self.f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * ln(s) / s).sqrt();
                self.spare = Some(v * f);
                return u * f;
            }
        }
    }

    /// `exp(sigma * N(0,1))`: a log-normal factor with median 1.
    pub(crate) fn lognormal(&mut self, sigma: f64) -> f64 {
        exp(sigma * self.normal())
    }

    /// Log-uniform in `[lo, hi)` (`0 < lo < hi`).
    pub(crate) fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo * exp(self.f64() * ln(hi / lo))
    }

    /// Poisson with mean `mu` (small `mu`, by inversion).
    pub(crate) fn poisson(&mut self, mu: f64) -> u32 {
        let limit = exp(-mu);
        let mut p = self.f64();
        let mut k = 0;
        while p >= limit && k < 64 {
            p *= self.f64();
            k += 1;
        }
        k
    }

    /// An index drawn from a cumulative weight table (last entry = total).
    pub(crate) fn pick_cdf(&mut self, cdf: &[f32]) -> usize {
        let total = cdf.last().copied().unwrap_or(0.0);
        let x = self.f64() as f32 * total;
        cdf.iter()
            .position(|&c| x < c)
            .unwrap_or(cdf.len().saturating_sub(1))
    }

    /// An index drawn from (unnormalised) weights.
    pub(crate) fn pick(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }
}

/// Natural logarithm of a positive normal number.
pub(crate) fn ln(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return f64::NEG_INFINITY;
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0
                        + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0 + s2 / 17.0)))))));
    e as f64 * LN_2 + 2.0 * s * series
}

/// `e^x`, for `x` in about `[-700, 700]` (clamped outside).
pub(crate) fn exp(x: f64) -> f64 {
    let x = x.clamp(-700.0, 700.0);
    let k = (x * LOG2_E).round();
    let r = x - k * LN_2;
    // Taylor series of e^r, |r| <= 0.35
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=14 {
        term *= r / f64::from(i);
        sum += term;
    }
    sum * f64::from_bits(((k as i64 + 1023) as u64) << 52)
}

/// Cosine.
pub(crate) fn cos(x: f64) -> f64 {
    let mut r = x - (x / TAU).round() * TAU; // [-pi, pi]
    let mut sign = 1.0;
    if r > PI / 2.0 {
        r = PI - r;
        sign = -1.0;
    } else if r < -PI / 2.0 {
        r = -PI - r;
        sign = -1.0;
    }
    let r2 = r * r;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=10 {
        let n = f64::from(2 * i);
        term *= -r2 / ((n - 1.0) * n);
        sum += term;
    }
    sign * sum
}

/// Rounds half away from zero, for `|x| < 2^52` (inline, where `f64::round` may be a call).
pub(crate) fn round(x: f64) -> f64 {
    if x >= 0.0 {
        (x + 0.5) as i64 as f64
    } else {
        (x - 0.5) as i64 as f64
    }
}

/// [`round`] as a method.
pub(crate) trait Rnd {
    fn rnd(self) -> f64;
}

impl Rnd for f64 {
    fn rnd(self) -> f64 {
        round(self)
    }
}

/// Rounds to a multiple of `1 / scale` (e.g. `scale` 10 for one decimal).
pub(crate) fn round_to(x: f64, scale: f64) -> f64 {
    round(x * scale) / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_is_accurate() {
        for &x in &[1e-9, 0.001, 0.5, 1.0, 2.0, 10.0, 12345.678] {
            assert!(
                (ln(x) - x.ln()).abs() < 1e-12 * x.ln().abs().max(1.0),
                "ln {x}"
            );
        }
        for &x in &[-30.0, -1.0, -0.1, 0.0, 0.3, 1.0, 5.0, 40.0] {
            assert!((exp(x) / x.exp() - 1.0).abs() < 1e-13, "exp {x}");
        }
        for i in -40..40 {
            let x = f64::from(i) * 0.37;
            assert!((cos(x) - x.cos()).abs() < 1e-9, "cos {x}");
        }
    }

    #[test]
    fn generator_is_fixed_and_uniform() {
        // Reference values pin the algorithm: a change of output is a change of data.
        let mut r = Rng::new(key(42, &[1, 2]));
        let a = r.next_u64();
        let mut r2 = Rng::new(key(42, &[1, 2]));
        assert_eq!(a, r2.next_u64());
        assert_ne!(key(42, &[1, 2]), key(42, &[2, 1]));
        let n = 100_000;
        let mean: f64 = (0..n).map(|_| r.f64()).sum::<f64>() / f64::from(n);
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let normals: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let m = normals.iter().sum::<f64>() / f64::from(n);
        let v = normals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / f64::from(n);
        assert!(m.abs() < 0.02 && (v - 1.0).abs() < 0.03, "{m} {v}");
        let p: f64 = (0..n).map(|_| f64::from(r.poisson(0.7))).sum::<f64>() / f64::from(n);
        assert!((p - 0.7).abs() < 0.02, "{p}");
    }
}
