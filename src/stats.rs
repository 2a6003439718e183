//! Statistical tests for fleet queries, computed from per-group aggregates instead of raw
//! rows: one-way ANOVA over [`Moments`], and the chi-square test of independence over a
//! contingency table of counts.
//!
//! This module owns the arithmetic from aggregates to test statistics and p-values. It reads
//! no rows and no files: the query layer folds rows into one [`Moments`] per group (or into
//! counts) and hands them here. The F and chi-squared tails come from `statrs`.
//!
//! # Invariants
//!
//! - Nothing here panics, whatever the input: empty slices, zero counts, values at the ends
//!   of `i64`, hand-made moments that no data could produce. Bad input is a [`StatsError`].
//! - Every sum of squares is a sum of non-negative terms, and each term comes from one exact
//!   integer (computed in `i128`, or in 256 bits where `i128` would overflow) that is
//!   converted to `f64` once. No term suffers cancellation, so the results agree with the
//!   two-pass textbook computation on the raw values to a few ulps per term.
//! - Results list only the non-empty groups, rows and columns, in input order.
//!
//! # Why these formulas
//!
//! Values are stored as integers `x` standing for `x / scale`. In stored units, for group
//! `g` with `n_g` values, sum `S_g` and sum of squares `Q_g` (and `N`, `S` over all groups):
//!
//! - Within group `g`: `Σ(x − S_g/n_g)² = (n_g·Q_g − S_g²) / n_g`. The numerator is an
//!   integer, computed exactly; it is where the cancellation happens, so it must be exact.
//! - Between groups: both textbook shortcuts subtract nearly equal numbers exactly when the
//!   group means are close, which is the null hypothesis being tested:
//!   `Σ S_g²/n_g − S²/N` loses the digits that matter, and so does
//!   `SS_total − SS_within`. Putting `Σ S_g²/n_g − S²/N` over one exact common denominator
//!   needs the lcm of all the `n_g`, which overflows after a handful of groups. Instead each
//!   group's term gets its own denominator:
//!   `n_g·(S_g/n_g − S/N)² = (N·S_g − n_g·S)² / (n_g·N²)`. `d_g = N·S_g − n_g·S` is an exact
//!   integer; its square is never formed in integers: `d_g` becomes an `f64` once, and the
//!   rest is multiplication and division, which keep the relative error at a few ulps.
//! - Chi-square: the same device. With row total `R`, column total `C` and grand total `T`,
//!   `(O − E)²/E = (T·O − R·C)² / (T·R·C)`, and `T·O − R·C` is an exact integer.
//!
//! Sums of squares are divided by `scale²` at the end and means by `scale`. F, chi-square
//! and the p-values do not depend on the scale; they are computed in stored units.

use statrs::function::beta::checked_beta_reg;
use statrs::function::gamma::checked_gamma_ur;

/// Moments of one group of a measure, in stored units: every value is an integer `x`
/// standing for `x / scale` (hearth stores numbers as integers scaled by 10^decimals).
///
/// Built with [`Moments::add`] and [`Moments::merge`], which saturate instead of wrapping:
/// a field stuck at its bound (`n == u64::MAX`, `sum` at `i128::MIN`/`MAX`,
/// `sum_sq == i128::MAX`) marks the group as overflowed, and [`anova`] reports it as
/// [`StatsError::Overflow`] rather than computing with a wrong sum. `sum_sq` holds about
/// two values at the ends of `i64`, or 2^62 values of magnitude 2^32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Moments {
    /// Number of values.
    pub n: u64,
    /// Sum of the values.
    pub sum: i128,
    /// Sum of the squares of the values.
    pub sum_sq: i128,
}

impl Moments {
    /// Adds one value.
    pub fn add(&mut self, x: i64) {
        let x = i128::from(x);
        self.n = self.n.saturating_add(1);
        self.sum = self.sum.saturating_add(x);
        // |x| <= 2^63, so x*x <= 2^126 fits in i128.
        self.sum_sq = self.sum_sq.saturating_add(x * x);
    }

    /// Adds every value of `other` (e.g. a group's moments from another segment).
    pub fn merge(&mut self, other: &Moments) {
        self.n = self.n.saturating_add(other.n);
        self.sum = self.sum.saturating_add(other.sum);
        self.sum_sq = self.sum_sq.saturating_add(other.sum_sq);
    }

    /// True when a field sits at the bound where [`add`](Self::add) and
    /// [`merge`](Self::merge) saturate, so the true value may be larger.
    fn is_saturated(&self) -> bool {
        self.n == u64::MAX
            || self.sum == i128::MAX
            || self.sum == i128::MIN
            || self.sum_sq == i128::MAX
    }
}

/// One group of an [`Anova`], in real units.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AnovaGroup {
    /// The group's name, as passed to [`anova`].
    pub name: String,
    /// Number of values.
    pub n: u64,
    /// Mean, in real units (stored mean divided by the scale).
    pub mean: f64,
}

/// The result of a one-way ANOVA ([`anova`]). Sums of squares are in real units squared.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Anova {
    /// Groups with `n > 0`, in input order.
    pub groups: Vec<AnovaGroup>,
    /// Mean of all values, in real units.
    pub grand_mean: f64,
    /// Between-groups sum of squares: `Σ n_g·(mean_g − grand_mean)²`.
    pub ss_between: f64,
    /// Within-groups sum of squares: `Σ_g Σ (x − mean_g)²`.
    pub ss_within: f64,
    /// Between-groups degrees of freedom: groups − 1.
    pub df_between: u64,
    /// Within-groups degrees of freedom: values − groups.
    pub df_within: u64,
    /// `(ss_between / df_between) / (ss_within / df_within)`; `+inf` when `ss_within` is 0
    /// and `ss_between` is not (serde_json writes `+inf` as `null`).
    pub f: f64,
    /// Upper tail of F(df_between, df_within) at `f`: the probability of an F this large
    /// if all group means were equal; 0 when `f` is `+inf`.
    pub p_value: f64,
}

/// One-way ANOVA across groups. `scale` divides stored values into real ones (e.g. 10.0 for
/// one decimal; for a rate such as cycles per week pass the number of weeks).
///
/// Groups with `n == 0` are skipped. When every group is constant but the means differ
/// (`ss_within == 0 < ss_between`) the means differ with certainty: `f` is `+inf` and
/// `p_value` is 0. When every value is equal, F is 0/0 and the result is
/// [`StatsError::NoVariance`].
///
/// # Errors
///
/// [`StatsError::InvalidScale`] unless `scale` is finite and positive;
/// [`StatsError::TooFewGroups`] with fewer than two non-empty groups;
/// [`StatsError::NoWithinDegreesOfFreedom`] when every group has one value;
/// [`StatsError::NoVariance`] when all values are equal;
/// [`StatsError::InconsistentMoments`] for moments no data could produce (`n == 0` with
/// non-zero sums, or `n·sum_sq < sum²`); [`StatsError::Overflow`] for saturated moments or
/// totals beyond `u64`/`i128`.
pub fn anova(groups: &[(String, Moments)], scale: f64) -> Result<Anova, StatsError> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(StatsError::InvalidScale(scale));
    }
    let groups = non_empty_groups(groups)?;
    if groups.len() < 2 {
        return Err(StatsError::TooFewGroups {
            groups: groups.len(),
        });
    }
    let (count, sum) = totals(&groups)?;
    let k = groups.len() as u64;
    // Every group has n >= 1, so count >= k.
    let df_within = count.saturating_sub(k);
    if df_within == 0 {
        return Err(StatsError::NoWithinDegreesOfFreedom {
            values: count,
            groups: groups.len(),
        });
    }
    let df_between = k - 1;

    let ss_within = ss_within_stored(&groups)?;
    let ss_between = ss_between_stored(&groups, count, sum);
    let (f, p_value) = f_test(ss_between, ss_within, df_between, df_within)?;

    Ok(Anova {
        groups: groups
            .iter()
            .map(|(name, m)| AnovaGroup {
                name: name.clone(),
                n: m.n,
                mean: m.sum as f64 / m.n as f64 / scale,
            })
            .collect(),
        grand_mean: sum as f64 / count as f64 / scale,
        // Divide twice rather than by scale²: scale² can overflow where each step does not.
        ss_between: ss_between / scale / scale,
        ss_within: ss_within / scale / scale,
        df_between,
        df_within,
        f,
        p_value,
    })
}

/// The groups with values, after checking each group's moments are usable.
fn non_empty_groups(groups: &[(String, Moments)]) -> Result<Vec<&(String, Moments)>, StatsError> {
    let mut kept = Vec::with_capacity(groups.len());
    for group in groups {
        let (name, m) = group;
        if m.is_saturated() {
            return Err(StatsError::Overflow);
        }
        if m.n == 0 {
            if m.sum != 0 || m.sum_sq != 0 {
                return Err(StatsError::InconsistentMoments {
                    group: name.clone(),
                });
            }
            continue;
        }
        kept.push(group);
    }
    Ok(kept)
}

/// Total count and total sum over the groups, checked.
fn totals(groups: &[&(String, Moments)]) -> Result<(u64, i128), StatsError> {
    let mut count: u64 = 0;
    let mut sum: i128 = 0;
    for (_, m) in groups {
        count = count.checked_add(m.n).ok_or(StatsError::Overflow)?;
        sum = sum.checked_add(m.sum).ok_or(StatsError::Overflow)?;
    }
    Ok((count, sum))
}

/// Within-groups sum of squares in stored units: `Σ_g (n_g·Q_g − S_g²) / n_g`, each
/// numerator exact.
fn ss_within_stored(groups: &[&(String, Moments)]) -> Result<f64, StatsError> {
    let mut terms = Vec::with_capacity(groups.len());
    for (name, m) in groups {
        let n = i128::from(m.n);
        let numerator = product_difference(n, m.sum_sq, m.sum, m.sum);
        // Exact, so a negative numerator is not rounding: these moments break
        // Cauchy-Schwarz (n·Σx² >= (Σx)²) and describe no data.
        if numerator < 0.0 {
            return Err(StatsError::InconsistentMoments {
                group: name.clone(),
            });
        }
        terms.push(numerator / m.n as f64);
    }
    Ok(compensated_sum(terms))
}

/// Between-groups sum of squares in stored units: `Σ_g (N·S_g − n_g·S)² / (n_g·N²)`, with
/// `N·S_g − n_g·S` exact (see the module documentation for why this form).
fn ss_between_stored(groups: &[&(String, Moments)], count: u64, sum: i128) -> f64 {
    let big_n = i128::from(count);
    let n_f = count as f64;
    compensated_sum(groups.iter().map(|(_, m)| {
        let d = product_difference(big_n, m.sum, i128::from(m.n), sum);
        // d/N = n_g·(mean_g − grand mean); dividing before squaring keeps it in range.
        let scaled = d / n_f;
        scaled * scaled / m.n as f64
    }))
}

/// F statistic and its upper-tail p-value from sums of squares (any units, as long as both
/// share them) and degrees of freedom (both >= 1).
fn f_test(
    ss_between: f64,
    ss_within: f64,
    df_between: u64,
    df_within: u64,
) -> Result<(f64, f64), StatsError> {
    if ss_within == 0.0 {
        if ss_between == 0.0 {
            return Err(StatsError::NoVariance);
        }
        return Ok((f64::INFINITY, 0.0));
    }
    if ss_between == 0.0 {
        return Ok((0.0, 1.0));
    }
    let (d1, d2) = (df_between as f64, df_within as f64);
    let f = (ss_between / d1) / (ss_within / d2);
    // P(F' > f) = I_x(d2/2, d1/2) at x = d2/(d2 + d1·f), which equals
    // ss_within/(ss_within + ss_between). statrs' FisherSnedecor::sf computes x as
    // 1 − d1·f/(d1·f + d2), losing relative precision when f is large and p tiny; taking x
    // from the sums of squares avoids that subtraction.
    let x = (ss_within / (ss_within + ss_between)).clamp(0.0, 1.0);
    // The only errors are a or b <= 0 or x outside [0, 1], excluded above.
    let p = checked_beta_reg(d2 / 2.0, d1 / 2.0, x).unwrap_or(f64::NAN);
    // A probability, whatever the continued fraction's last ulp says.
    Ok((f, p.clamp(0.0, 1.0)))
}

/// The result of a chi-square test of independence ([`chi_square`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChiSquare {
    /// Row labels; only rows with a non-zero total are kept.
    pub rows: Vec<String>,
    /// Column labels; only columns with a non-zero total are kept.
    pub columns: Vec<String>,
    /// Observed counts of the kept rows and columns, `observed[row][col]`.
    pub observed: Vec<Vec<u64>>,
    /// Expected counts under independence: row total × column total / grand total.
    pub expected: Vec<Vec<f64>>,
    /// Pearson's statistic `Σ (observed − expected)² / expected` (no continuity correction).
    pub statistic: f64,
    /// Degrees of freedom: (rows − 1)·(columns − 1), after dropping empty ones.
    pub df: u64,
    /// Upper tail of chi-squared(df) at `statistic`.
    pub p_value: f64,
}

/// Chi-square test of independence of a contingency table `counts[row][col]`.
///
/// `counts` must have one row per label in `rows`, each with one count per label in
/// `columns`. Rows and columns whose total is 0 carry no information and would make an
/// expected count 0; they are dropped before the test.
///
/// # Errors
///
/// [`StatsError::RowCountMismatch`] or [`StatsError::RaggedTable`] when `counts` does not
/// match the labels; [`StatsError::TableTooSmall`] when fewer than two rows or two columns
/// have a non-zero total; [`StatsError::Overflow`] if the grand total exceeds `i128`.
pub fn chi_square(
    rows: &[String],
    columns: &[String],
    counts: &[Vec<u64>],
) -> Result<ChiSquare, StatsError> {
    check_table_shape(rows.len(), columns.len(), counts)?;
    let row_totals: Vec<u128> = counts
        .iter()
        .map(|row| checked_total(row.iter().copied()))
        .collect::<Result<_, _>>()?;
    let column_totals: Vec<u128> = (0..columns.len())
        .map(|j| checked_total(counts.iter().map(|row| row[j])))
        .collect::<Result<_, _>>()?;
    let total = row_totals
        .iter()
        .try_fold(0u128, |acc, &r| acc.checked_add(r))
        .ok_or(StatsError::Overflow)?;

    let kept_rows: Vec<usize> = (0..rows.len()).filter(|&i| row_totals[i] > 0).collect();
    let kept_columns: Vec<usize> = (0..columns.len())
        .filter(|&j| column_totals[j] > 0)
        .collect();
    if kept_rows.len() < 2 || kept_columns.len() < 2 {
        return Err(StatsError::TableTooSmall {
            rows: kept_rows.len(),
            columns: kept_columns.len(),
        });
    }

    // Exact products below need signed 128-bit operands.
    let to_i128 = |v: u128| i128::try_from(v).map_err(|_| StatsError::Overflow);
    let t = to_i128(total)?;
    let t_f = total as f64;
    let mut observed = Vec::with_capacity(kept_rows.len());
    let mut expected = Vec::with_capacity(kept_rows.len());
    let mut terms = Vec::with_capacity(kept_rows.len() * kept_columns.len());
    for &i in &kept_rows {
        let r = to_i128(row_totals[i])?;
        let mut observed_row = Vec::with_capacity(kept_columns.len());
        let mut expected_row = Vec::with_capacity(kept_columns.len());
        for &j in &kept_columns {
            let c = to_i128(column_totals[j])?;
            let o = counts[i][j];
            let e = row_totals[i] as f64 * column_totals[j] as f64 / t_f;
            // (T·O − R·C)/T = O − E, from an exact integer.
            let deviation = product_difference(t, i128::from(o), r, c) / t_f;
            terms.push(deviation * deviation / e);
            observed_row.push(o);
            expected_row.push(e);
        }
        observed.push(observed_row);
        expected.push(expected_row);
    }

    let statistic = compensated_sum(terms);
    let df = ((kept_rows.len() - 1) as u64)
        .checked_mul((kept_columns.len() - 1) as u64)
        .ok_or(StatsError::Overflow)?;
    Ok(ChiSquare {
        rows: kept_rows.iter().map(|&i| rows[i].clone()).collect(),
        columns: kept_columns.iter().map(|&j| columns[j].clone()).collect(),
        observed,
        expected,
        statistic,
        df,
        p_value: chi_squared_upper_tail(statistic, df),
    })
}

/// Checks `counts` has `rows` rows of `columns` counts each.
fn check_table_shape(rows: usize, columns: usize, counts: &[Vec<u64>]) -> Result<(), StatsError> {
    if counts.len() != rows {
        return Err(StatsError::RowCountMismatch {
            labels: rows,
            rows: counts.len(),
        });
    }
    match counts.iter().position(|row| row.len() != columns) {
        Some(row) => Err(StatsError::RaggedTable {
            row,
            expected: columns,
            found: counts[row].len(),
        }),
        None => Ok(()),
    }
}

/// Sum of counts, checked (u128 overflows only past 2^64 cells, but no panic either way).
fn checked_total(mut counts: impl Iterator<Item = u64>) -> Result<u128, StatsError> {
    counts
        .try_fold(0u128, |acc, c| acc.checked_add(u128::from(c)))
        .ok_or(StatsError::Overflow)
}

/// P(X > statistic) for X ~ chi-squared(df), df >= 1.
fn chi_squared_upper_tail(statistic: f64, df: u64) -> f64 {
    // Q(df/2, statistic/2) is undefined at 0 in statrs; the tail there is the whole mass.
    if statistic <= 0.0 {
        return 1.0;
    }
    // The only errors are df <= 0 or a statistic <= 0 or infinite; the statistic is a finite
    // sum of finite terms.
    checked_gamma_ur(df as f64 / 2.0, statistic / 2.0)
        .unwrap_or(f64::NAN)
        .clamp(0.0, 1.0)
}

/// Why a statistic could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// The scale must be finite and positive.
    #[error("scale must be finite and positive, got {0}")]
    InvalidScale(f64),
    /// ANOVA compares groups: it needs at least two with values.
    #[error("ANOVA needs at least two non-empty groups, got {groups}")]
    TooFewGroups {
        /// Non-empty groups found.
        groups: usize,
    },
    /// Every group has a single value, so there is no within-group variation to compare
    /// against.
    #[error("no within-group degrees of freedom: {values} values in {groups} groups")]
    NoWithinDegreesOfFreedom {
        /// Values over all groups.
        values: u64,
        /// Non-empty groups.
        groups: usize,
    },
    /// Every value is equal: both sums of squares are 0 and F is 0/0.
    #[error("all values are equal: no variance to test")]
    NoVariance,
    /// A group's moments describe no possible data (`n == 0` with non-zero sums, or
    /// `n·sum_sq < sum²`).
    #[error("moments of group {group:?} are inconsistent (n·sum_sq < sum², or n = 0 with non-zero sums)")]
    InconsistentMoments {
        /// The group's name.
        group: String,
    },
    /// Moments saturated while being accumulated, or a total does not fit its integer type.
    #[error("arithmetic overflow: saturated moments or totals beyond the integer range")]
    Overflow,
    /// Fewer than two rows or columns with a non-zero total remain: nothing to test.
    #[error("contingency table is {rows}x{columns} after dropping empty rows and columns; need at least 2x2")]
    TableTooSmall {
        /// Rows with a non-zero total.
        rows: usize,
        /// Columns with a non-zero total.
        columns: usize,
    },
    /// `counts` has a different number of rows than there are row labels.
    #[error("contingency table has {rows} rows of counts for {labels} row labels")]
    RowCountMismatch {
        /// Row labels given.
        labels: usize,
        /// Rows of counts given.
        rows: usize,
    },
    /// A row of counts has a different length than there are column labels.
    #[error("contingency table row {row} has {found} counts, expected {expected}")]
    RaggedTable {
        /// Index of the first bad row.
        row: usize,
        /// Column labels given.
        expected: usize,
        /// Counts in that row.
        found: usize,
    },
}

/// Neumaier's compensated sum: the terms here can differ by many orders of magnitude
/// (one large group among many small ones), and plain summation would drop the small ones'
/// low bits.
fn compensated_sum(terms: impl IntoIterator<Item = f64>) -> f64 {
    let mut sum = 0.0f64;
    let mut compensation = 0.0f64;
    for t in terms {
        let s = sum + t;
        compensation += if sum.abs() >= t.abs() {
            (sum - s) + t
        } else {
            (t - s) + sum
        };
        sum = s;
    }
    sum + compensation
}

/// `a·b − c·d` computed exactly and then rounded to `f64`: in `i128` when the products and
/// the difference fit, else in 256 bits (|a·b| <= 2^254, so the difference always fits).
/// The sign, and zero, are always exact.
fn product_difference(a: i128, b: i128, c: i128, d: i128) -> f64 {
    let narrow = a
        .checked_mul(b)
        .zip(c.checked_mul(d))
        .and_then(|(ab, cd)| ab.checked_sub(cd));
    match narrow {
        Some(v) => v as f64,
        None => wide_product_difference(a, b, c, d),
    }
}

/// The 256-bit path of [`product_difference`]. Exact up to the final conversion, which
/// rounds twice (each half, then their sum): relative error below 2^-51.
fn wide_product_difference(a: i128, b: i128, c: i128, d: i128) -> f64 {
    SignedU256::product(a, b)
        .minus(SignedU256::product(c, d))
        .to_f64()
}

/// Unsigned 256-bit integer, as two 128-bit halves. Field order makes the derived `Ord`
/// numeric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct U256 {
    hi: u128,
    lo: u128,
}

impl U256 {
    /// The full product of two `u128`, by schoolbook multiplication of 64-bit halves.
    fn product(a: u128, b: u128) -> U256 {
        const LOW: u128 = u64::MAX as u128;
        let (a1, a0) = (a >> 64, a & LOW);
        let (b1, b0) = (b >> 64, b & LOW);
        // Each partial product is below 2^128.
        let ll = a0 * b0;
        let lh = a0 * b1;
        let hl = a1 * b0;
        let hh = a1 * b1;
        // Bits 64..128: at most 3·(2^64 − 1), no overflow.
        let mid = (ll >> 64) + (lh & LOW) + (hl & LOW);
        U256 {
            // The true product is below 2^256, so this sum cannot overflow.
            hi: hh + (lh >> 64) + (hl >> 64) + (mid >> 64),
            lo: (ll & LOW) | (mid << 64),
        }
    }

    /// `self + other`; the callers' operands are below 2^255, so the sum fits. Wrapping
    /// only so that a broken bound cannot panic.
    fn plus(self, other: U256) -> U256 {
        let (lo, carry) = self.lo.overflowing_add(other.lo);
        U256 {
            hi: self
                .hi
                .wrapping_add(other.hi)
                .wrapping_add(u128::from(carry)),
            lo,
        }
    }

    /// `self − other` for `self >= other`.
    fn minus(self, other: U256) -> U256 {
        let (lo, borrow) = self.lo.overflowing_sub(other.lo);
        U256 {
            hi: self
                .hi
                .wrapping_sub(other.hi)
                .wrapping_sub(u128::from(borrow)),
            lo,
        }
    }

    fn to_f64(self) -> f64 {
        // 2^128 is exact in f64.
        self.hi as f64 * 2f64.powi(128) + self.lo as f64
    }
}

/// Sign and magnitude of a product of two `i128` (magnitude at most 2^254).
#[derive(Debug, Clone, Copy)]
struct SignedU256 {
    negative: bool,
    magnitude: U256,
}

impl SignedU256 {
    fn product(a: i128, b: i128) -> SignedU256 {
        SignedU256 {
            negative: (a < 0) != (b < 0),
            magnitude: U256::product(a.unsigned_abs(), b.unsigned_abs()),
        }
    }

    /// `self − other`, for magnitudes at most 2^254 (so an added magnitude fits).
    fn minus(self, other: SignedU256) -> SignedU256 {
        let other_negated = !other.negative;
        if self.negative == other_negated {
            SignedU256 {
                negative: self.negative,
                magnitude: self.magnitude.plus(other.magnitude),
            }
        } else if self.magnitude >= other.magnitude {
            SignedU256 {
                negative: self.negative,
                magnitude: self.magnitude.minus(other.magnitude),
            }
        } else {
            SignedU256 {
                negative: other_negated,
                magnitude: other.magnitude.minus(self.magnitude),
            }
        }
    }

    fn to_f64(self) -> f64 {
        let m = self.magnitude.to_f64();
        if self.negative {
            -m
        } else {
            m
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// SplitMix64: a small deterministic generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in `lo..=hi` (modulo bias is irrelevant here).
        fn range(&mut self, lo: i64, hi: i64) -> i64 {
            let span = (hi - lo) as u64 + 1;
            lo + (self.next() % span) as i64
        }
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        a == b || (a - b).abs() <= rel * a.abs().max(b.abs())
    }

    #[track_caller]
    fn assert_close(what: &str, got: f64, want: f64, rel: f64) {
        assert!(
            close(got, want, rel),
            "{what}: got {got:e}, want {want:e} (relative error {:e})",
            (got - want).abs() / want.abs()
        );
    }

    fn moments_of(values: &[i64]) -> Moments {
        let mut m = Moments::default();
        for &v in values {
            m.add(v);
        }
        m
    }

    fn named(groups: &[Vec<i64>]) -> Vec<(String, Moments)> {
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("g{i}"), moments_of(g)))
            .collect()
    }

    /// The textbook one-way ANOVA on raw values, two-pass in f64: group and grand means
    /// first, then squared deviations from them. Empty groups are skipped.
    struct Textbook {
        means: Vec<f64>,
        grand_mean: f64,
        ss_between: f64,
        ss_within: f64,
        df_between: u64,
        df_within: u64,
        f: f64,
    }

    fn textbook_anova(groups: &[Vec<i64>], scale: f64) -> Textbook {
        let real: Vec<Vec<f64>> = groups
            .iter()
            .filter(|g| !g.is_empty())
            .map(|g| g.iter().map(|&x| x as f64 / scale).collect())
            .collect();
        let count: usize = real.iter().map(Vec::len).sum();
        let grand_mean = real.iter().flatten().sum::<f64>() / count as f64;
        let means: Vec<f64> = real
            .iter()
            .map(|g| g.iter().sum::<f64>() / g.len() as f64)
            .collect();
        let ss_between = real
            .iter()
            .zip(&means)
            .map(|(g, m)| g.len() as f64 * (m - grand_mean).powi(2))
            .sum::<f64>();
        let ss_within = real
            .iter()
            .zip(&means)
            .map(|(g, m)| g.iter().map(|x| (x - m).powi(2)).sum::<f64>())
            .sum::<f64>();
        let df_between = real.len() as u64 - 1;
        let df_within = (count - real.len()) as u64;
        Textbook {
            means,
            grand_mean,
            ss_between,
            ss_within,
            df_between,
            df_within,
            f: (ss_between / df_between as f64) / (ss_within / df_within as f64),
        }
    }

    /// Compares to the textbook result. `magnitude` is the largest |value| in real units:
    /// the textbook's f64 sums carry an absolute error of about ε·magnitude, which is all
    /// there is to compare against where a mean is exactly 0.
    #[track_caller]
    fn assert_matches_textbook(got: &Anova, want: &Textbook, rel: f64, magnitude: f64) {
        assert_eq!(got.df_between, want.df_between);
        assert_eq!(got.df_within, want.df_within);
        assert_close("ss_between", got.ss_between, want.ss_between, rel);
        assert_close("ss_within", got.ss_within, want.ss_within, rel);
        assert_close("f", got.f, want.f, rel);
        let assert_mean = |what: &str, got: f64, want: f64| {
            if (got - want).abs() > 1e-13 * magnitude {
                assert_close(what, got, want, rel);
            }
        };
        assert_mean("grand_mean", got.grand_mean, want.grand_mean);
        assert_eq!(got.groups.len(), want.means.len());
        for (g, m) in got.groups.iter().zip(&want.means) {
            assert_mean("group mean", g.mean, *m);
        }
    }

    fn magnitude(groups: &[Vec<i64>], scale: f64) -> f64 {
        let max = groups.iter().flatten().map(|x| x.unsigned_abs()).max();
        max.unwrap_or(0) as f64 / scale
    }

    #[test]
    fn anova_matches_textbook_on_random_groups() {
        let mut rng = Rng(0x5EED_0001);
        let mut compared = 0;
        for case in 0..600 {
            let k = rng.range(1, 7) as usize;
            // Value ranges: tiny (many ties, constant groups), wide, and offset far from 0
            // (the cancellation case for Σx² − (Σx)²/n).
            let (lo, hi) = match case % 3 {
                0 => (-5, 5),
                1 => (-1_000_000, 1_000_000),
                _ => (100_000, 100_100),
            };
            let scale = [1.0, 10.0, 1000.0, 7.0][case % 4];
            let groups: Vec<Vec<i64>> = (0..k)
                .map(|_| {
                    let len = rng.range(0, 30) as usize;
                    (0..len).map(|_| rng.range(lo, hi)).collect()
                })
                .collect();
            let result = anova(&named(&groups), scale);

            let non_empty: Vec<&Vec<i64>> = groups.iter().filter(|g| !g.is_empty()).collect();
            let count: usize = non_empty.iter().map(|g| g.len()).sum();
            let constant = |g: &&Vec<i64>| g.iter().all(|&x| x == g[0]);
            if non_empty.len() < 2 {
                assert_eq!(
                    result,
                    Err(StatsError::TooFewGroups {
                        groups: non_empty.len()
                    })
                );
            } else if count == non_empty.len() {
                assert!(matches!(
                    result,
                    Err(StatsError::NoWithinDegreesOfFreedom { .. })
                ));
            } else if non_empty.iter().all(constant) {
                // Exact zero within groups: decided on integers, not on the textbook's
                // rounded means.
                let first = non_empty[0][0];
                if non_empty.iter().all(|g| g[0] == first) {
                    assert_eq!(result, Err(StatsError::NoVariance));
                } else {
                    let r = result.expect("constant groups with different means");
                    assert_eq!((r.ss_within, r.f, r.p_value), (0.0, f64::INFINITY, 0.0));
                }
            } else {
                let r = result.expect("valid groups");
                let magnitude = magnitude(&groups, scale);
                assert_matches_textbook(&r, &textbook_anova(&groups, scale), 1e-9, magnitude);
                assert!((0.0..=1.0).contains(&r.p_value));
                compared += 1;
            }
        }
        // The degenerate branches must not swallow the comparison.
        assert!(compared > 300, "only {compared} cases compared");
    }

    /// Box, Hunter & Hunter's blood coagulation times (4 diets). Reference values from
    /// scipy 1.17.1 `stats.f_oneway`, p confirmed with mpmath's `betainc` at 50 digits.
    #[test]
    fn anova_p_value_coagulation() {
        let groups = vec![
            vec![62, 60, 63, 59],
            vec![63, 67, 71, 64, 65, 66],
            vec![68, 66, 71, 67, 68, 68],
            vec![56, 62, 60, 61, 63, 64, 63, 59],
        ];
        let r = anova(&named(&groups), 1.0).expect("anova");
        assert_matches_textbook(&r, &textbook_anova(&groups, 1.0), 1e-12, 0.0);
        assert_eq!((r.df_between, r.df_within), (3, 20));
        assert_close("ss_between", r.ss_between, 228.0, 1e-12);
        assert_close("ss_within", r.ss_within, 112.0, 1e-12);
        assert_close("f", r.f, 13.571428571428571, 1e-12);
        assert_close("p", r.p_value, 4.6584709846947945e-05, 1e-9);
    }

    /// One decimal stored as tenths, with an empty group that must be skipped. Reference:
    /// scipy `stats.f_oneway([12.3, 14.5, 11.8, 13.1, 12.7], [14.0, 15.2, 14.9, 13.8],
    /// [11.9, 11.1, 12.5])`: F = 8.605866862481959, p = 0.008144425009362135.
    #[test]
    fn anova_p_value_scaled_with_empty_group() {
        let groups = vec![
            vec![123, 145, 118, 131, 127],
            vec![],
            vec![140, 152, 149, 138],
            vec![119, 111, 125],
        ];
        let r = anova(&named(&groups), 10.0).expect("anova");
        let names: Vec<&str> = r.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["g0", "g2", "g3"]);
        assert_matches_textbook(&r, &textbook_anova(&groups, 10.0), 1e-12, 0.0);
        assert_close("f", r.f, 8.605866862481959, 1e-12);
        assert_close("p", r.p_value, 0.008144425009362135, 1e-9);
        assert_close("mean", r.groups[1].mean, 14.475, 1e-12);
    }

    /// A tiny p-value, where the tail's precision matters. Reference: scipy `f_oneway`
    /// F = 300.0, p = 8.019015900212408e-13 (mpmath: 8.0190159002124059e-13).
    #[test]
    fn anova_p_value_far_tail() {
        let groups = vec![
            vec![1000, 1002, 998, 1001, 999, 1000],
            vec![1010, 1011, 1009, 1012, 1010, 1008],
            vec![990, 991, 989, 992, 990, 988],
        ];
        let r = anova(&named(&groups), 1.0).expect("anova");
        assert_close("f", r.f, 300.0, 1e-12);
        assert_close("p", r.p_value, 8.019015900212406e-13, 1e-9);
    }

    /// A million values, given as moments. Reference: the sums of squares and F in exact
    /// rational arithmetic (Python `fractions`), p from mpmath's `betainc` at 50 digits.
    /// statrs' incomplete beta is less accurate with a million degrees of freedom (its
    /// log-gamma terms cancel; 7.6e-10 relative here), hence the looser bound on p.
    #[test]
    fn anova_large_groups_from_moments() {
        let groups: Vec<(String, Moments)> = [
            (400_000u64, 14_923_457i128, 956_773_922i128),
            (350_000, 12_851_235, 824_319_260),
            (250_000, 9_254_321, 596_069_828),
        ]
        .iter()
        .enumerate()
        .map(|(i, &(n, sum, sum_sq))| (format!("g{i}"), Moments { n, sum, sum_sq }))
        .collect();
        let r = anova(&groups, 1.0).expect("anova");
        assert_eq!((r.df_between, r.df_within), (2, 999_997));
        assert_close("ss_between", r.ss_between, 65207.07918892857, 1e-12);
        assert_close("ss_within", r.ss_within, 1005949999.1666421, 1e-12);
        assert_close("f", r.f, 32.41059874830273, 1e-12);
        assert_close("p", r.p_value, 8.408373472346718e-15, 1e-8);
    }

    /// The p-value is statrs' F upper tail, only computed without its 1 − x subtraction.
    #[test]
    fn anova_p_value_agrees_with_statrs_fisher_snedecor() {
        use statrs::distribution::{ContinuousCDF, FisherSnedecor};
        let groups = vec![vec![3, 5, 4, 6], vec![7, 6, 8, 9, 7], vec![2, 4, 3]];
        let r = anova(&named(&groups), 1.0).expect("anova");
        let dist = FisherSnedecor::new(r.df_between as f64, r.df_within as f64).expect("F");
        assert_close("p", r.p_value, dist.sf(r.f), 1e-12);
    }

    /// Values near 2^60: n·Σx² and (Σx)² overflow i128, so the 256-bit path runs. Sums of
    /// squares do not change when every value is shifted, so the textbook reference is
    /// computed on the offsets from 2^60, where f64 is exact.
    #[test]
    fn anova_wide_path_for_values_near_2_pow_60() {
        let base = 1i64 << 60;
        let mut rng = Rng(0x5EED_0002);
        let offsets: Vec<Vec<i64>> = (0..3)
            .map(|g| (0..20).map(|_| rng.range(0, 1000) + 40 * g).collect())
            .collect();
        let values: Vec<Vec<i64>> = offsets
            .iter()
            .map(|g| g.iter().map(|&x| base + x).collect())
            .collect();
        let m = moments_of(&values[0]);
        assert!(i128::from(m.n).checked_mul(m.sum_sq).is_none());
        assert!(m.sum.checked_mul(m.sum).is_none());

        let scale = 100.0;
        let r = anova(&named(&values), scale).expect("anova");
        let want = textbook_anova(&offsets, scale);
        assert_close("ss_between", r.ss_between, want.ss_between, 1e-12);
        assert_close("ss_within", r.ss_within, want.ss_within, 1e-12);
        assert_close("f", r.f, want.f, 1e-12);
        let shift = base as f64 / scale;
        assert_close("grand_mean", r.grand_mean, shift + want.grand_mean, 1e-15);
    }

    /// Moments of 2^61 values, shifted by 2^32: N·S_g and n·Q overflow i128 in the shifted
    /// groups but not in the unshifted ones. Shifting changes no sum of squares, and the
    /// exact integers N·S_g − n_g·S and n·Q − S² are identical, so both paths must agree.
    #[test]
    fn anova_wide_path_agrees_with_narrow_path() {
        let shift: i128 = 1 << 32;
        let small: Vec<(String, Moments)> = (0..3i128)
            .map(|g| {
                let n = (1u64 << 61) + 12_345 * g as u64;
                let n_wide = i128::from(n);
                let sum = (g - 1) * (1 << 40) + 77 * g;
                let sum_sq = sum * sum / n_wide + n_wide * (3 + g);
                (format!("g{g}"), Moments { n, sum, sum_sq })
            })
            .collect();
        let shifted: Vec<(String, Moments)> = small
            .iter()
            .map(|(name, m)| {
                let n = i128::from(m.n);
                let moments = Moments {
                    n: m.n,
                    sum: m.sum + n * shift,
                    sum_sq: m.sum_sq + 2 * shift * m.sum + n * shift * shift,
                };
                (name.clone(), moments)
            })
            .collect();
        let count: i128 = small.iter().map(|(_, m)| i128::from(m.n)).sum();
        for ((_, s), (_, w)) in small.iter().zip(&shifted) {
            let n = i128::from(s.n);
            assert!(n.checked_mul(s.sum_sq).is_some() && count.checked_mul(s.sum).is_some());
            assert!(n.checked_mul(w.sum_sq).is_none() && count.checked_mul(w.sum).is_none());
        }

        let a = anova(&small, 1.0).expect("narrow");
        let b = anova(&shifted, 1.0).expect("wide");
        assert_close("ss_between", b.ss_between, a.ss_between, 1e-14);
        assert_close("ss_within", b.ss_within, a.ss_within, 1e-14);
        assert_close("f", b.f, a.f, 1e-14);
        assert_close("p", b.p_value, a.p_value, 1e-12);
        assert!(a.ss_between > 0.0 && a.ss_within > 0.0);
        for (x, y) in a.groups.iter().zip(&b.groups) {
            assert_close("mean", y.mean, x.mean + shift as f64, 1e-15);
        }
    }

    #[test]
    fn anova_degenerate_inputs_are_typed_errors() {
        assert_eq!(anova(&[], 1.0), Err(StatsError::TooFewGroups { groups: 0 }));
        let one = named(&[vec![1, 2, 3], vec![]]);
        assert_eq!(
            anova(&one, 1.0),
            Err(StatsError::TooFewGroups { groups: 1 })
        );
        let singles = named(&[vec![1], vec![2], vec![5]]);
        assert_eq!(
            anova(&singles, 1.0),
            Err(StatsError::NoWithinDegreesOfFreedom {
                values: 3,
                groups: 3
            })
        );
        let equal = named(&[vec![4, 4], vec![4, 4, 4]]);
        assert_eq!(anova(&equal, 1.0), Err(StatsError::NoVariance));
        for scale in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let groups = named(&[vec![1, 2], vec![3, 4]]);
            assert!(matches!(
                anova(&groups, scale),
                Err(StatsError::InvalidScale(_))
            ));
        }
    }

    #[test]
    fn anova_inconsistent_and_overflowing_moments_are_typed_errors() {
        let ok = ("ok".to_string(), moments_of(&[1, 2, 3]));
        let bad = |m: Moments| vec![ok.clone(), ("bad".to_string(), m)];
        let inconsistent = Err(StatsError::InconsistentMoments {
            group: "bad".to_string(),
        });
        let empty_with_sum = Moments {
            n: 0,
            sum: 5,
            sum_sq: 25,
        };
        assert_eq!(anova(&bad(empty_with_sum), 1.0), inconsistent);
        let below_cauchy_schwarz = Moments {
            n: 2,
            sum: 10,
            sum_sq: 49,
        };
        assert_eq!(anova(&bad(below_cauchy_schwarz), 1.0), inconsistent);
        let negative_sum_sq = Moments {
            n: 3,
            sum: 0,
            sum_sq: -1,
        };
        assert_eq!(anova(&bad(negative_sum_sq), 1.0), inconsistent);

        // Two values of magnitude 2^63 already exceed i128 in sum_sq.
        let saturated = moments_of(&[i64::MIN, i64::MIN]);
        assert_eq!(saturated.sum_sq, i128::MAX);
        assert_eq!(anova(&bad(saturated), 1.0), Err(StatsError::Overflow));
        let huge_count = Moments {
            n: u64::MAX - 1,
            sum: 0,
            sum_sq: 0,
        };
        let groups = vec![("a".to_string(), huge_count), ("b".to_string(), huge_count)];
        assert_eq!(anova(&groups, 1.0), Err(StatsError::Overflow));
    }

    #[test]
    fn anova_constant_groups_and_equal_means() {
        // Within-group variation 0, means different: certain difference.
        let r = anova(&named(&[vec![5, 5, 5], vec![7, 7]]), 1.0).expect("anova");
        assert_eq!((r.ss_within, r.f, r.p_value), (0.0, f64::INFINITY, 0.0));
        assert_close("ss_between", r.ss_between, 4.8, 1e-15);
        // Equal means: F = 0, p = 1, and exactly so.
        let r = anova(&named(&[vec![1, 2, 3], vec![3, 2, 1, 2]]), 1.0).expect("anova");
        assert_eq!((r.ss_between, r.f, r.p_value), (0.0, 0.0, 1.0));
    }

    #[test]
    fn moments_add_and_merge() {
        let mut a = moments_of(&[1, -2, 3]);
        assert_eq!(
            a,
            Moments {
                n: 3,
                sum: 2,
                sum_sq: 14
            }
        );
        a.merge(&moments_of(&[i64::MAX]));
        let max = i128::from(i64::MAX);
        assert_eq!(
            a,
            Moments {
                n: 4,
                sum: 2 + max,
                sum_sq: 14 + max * max
            }
        );
        let mut b = Moments {
            n: u64::MAX,
            sum: i128::MAX,
            sum_sq: i128::MAX,
        };
        b.merge(&a);
        b.add(1);
        assert_eq!(b.n, u64::MAX);
        assert_eq!(b.sum_sq, i128::MAX);
    }

    /// The textbook chi-square on a table: drop empty rows and columns, expected counts
    /// from the margins, Pearson's sum. Returns (kept rows, kept columns, expected, stat).
    fn textbook_chi_square(counts: &[Vec<u64>]) -> (Vec<usize>, Vec<usize>, Vec<Vec<f64>>, f64) {
        let cols = counts.first().map_or(0, Vec::len);
        let row_total = |i: usize| counts[i].iter().sum::<u64>() as f64;
        let col_total = |j: usize| counts.iter().map(|r| r[j]).sum::<u64>() as f64;
        let rows: Vec<usize> = (0..counts.len()).filter(|&i| row_total(i) > 0.0).collect();
        let columns: Vec<usize> = (0..cols).filter(|&j| col_total(j) > 0.0).collect();
        let total: f64 = rows.iter().map(|&i| row_total(i)).sum();
        let mut expected = Vec::new();
        let mut statistic = 0.0;
        for &i in &rows {
            let mut row = Vec::new();
            for &j in &columns {
                let e = row_total(i) * col_total(j) / total;
                statistic += (counts[i][j] as f64 - e).powi(2) / e;
                row.push(e);
            }
            expected.push(row);
        }
        (rows, columns, expected, statistic)
    }

    fn labels(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn chi_square_matches_textbook_on_random_tables() {
        let mut rng = Rng(0x5EED_0003);
        let mut compared = 0;
        for case in 0..600 {
            let r = rng.range(1, 5) as usize;
            let c = rng.range(1, 5) as usize;
            let max = [3, 50, 100_000][case % 3];
            let mut counts: Vec<Vec<u64>> = (0..r)
                .map(|_| (0..c).map(|_| rng.range(0, max) as u64).collect())
                .collect();
            // Now and then an empty row or column, which must be dropped.
            if case % 5 == 0 {
                let i = rng.range(0, r as i64 - 1) as usize;
                counts[i].iter_mut().for_each(|x| *x = 0);
            }
            if case % 7 == 0 {
                let j = rng.range(0, c as i64 - 1) as usize;
                counts.iter_mut().for_each(|row| row[j] = 0);
            }
            let result = chi_square(&labels("r", r), &labels("c", c), &counts);
            let (rows, columns, expected, statistic) = textbook_chi_square(&counts);
            if rows.len() < 2 || columns.len() < 2 {
                assert_eq!(
                    result,
                    Err(StatsError::TableTooSmall {
                        rows: rows.len(),
                        columns: columns.len()
                    })
                );
                continue;
            }
            let got = result.expect("chi-square");
            assert_eq!(got.df, ((rows.len() - 1) * (columns.len() - 1)) as u64);
            let kept: Vec<String> = rows.iter().map(|i| format!("r{i}")).collect();
            assert_eq!(got.rows, kept);
            assert_eq!(got.columns.len(), columns.len());
            for (i, &ri) in rows.iter().enumerate() {
                for (j, &cj) in columns.iter().enumerate() {
                    assert_eq!(got.observed[i][j], counts[ri][cj]);
                    assert_close("expected", got.expected[i][j], expected[i][j], 1e-12);
                }
            }
            // The textbook's (O − E) carries rounding noise of about ε·E even where the
            // exact statistic is 0 (proportional tables), hence the absolute floor.
            if (got.statistic - statistic).abs() > 1e-9 {
                assert_close("statistic", got.statistic, statistic, 1e-9);
            }
            assert!((0.0..=1.0).contains(&got.p_value));
            compared += 1;
        }
        assert!(compared > 300, "only {compared} cases compared");
    }

    /// Reference: scipy 1.17.1 `stats.chi2_contingency([[10, 20, 30], [6, 9, 17]],
    /// correction=False)`: statistic 0.27157465150403504, p 0.873028283380073, dof 2.
    #[test]
    fn chi_square_p_value_2x3() {
        let counts = vec![vec![10, 20, 30], vec![6, 9, 17]];
        let r = chi_square(&labels("r", 2), &labels("c", 3), &counts).expect("chi-square");
        assert_eq!(r.df, 2);
        assert_close("expected", r.expected[0][0], 16.0 * 60.0 / 92.0, 1e-15);
        assert_close("statistic", r.statistic, 0.2715746515040352, 1e-12);
        assert_close("p", r.p_value, 0.8730282833800729, 1e-9);
    }

    /// A 4x4 table with an empty row and column, which leave a 3x3 test. Reference: scipy
    /// `chi2_contingency([[12, 5, 7], [8, 15, 2], [3, 4, 11]], correction=False)`:
    /// statistic 19.801669283413847, p 0.0005464895988803474, dof 4.
    #[test]
    fn chi_square_p_value_drops_empty_row_and_column() {
        let counts = vec![
            vec![12, 0, 5, 7],
            vec![0, 0, 0, 0],
            vec![8, 0, 15, 2],
            vec![3, 0, 4, 11],
        ];
        let r = chi_square(&labels("r", 4), &labels("c", 4), &counts).expect("chi-square");
        assert_eq!(r.rows, ["r0", "r2", "r3"]);
        assert_eq!(r.columns, ["c0", "c2", "c3"]);
        assert_eq!(r.observed, [[12, 5, 7], [8, 15, 2], [3, 4, 11]]);
        assert_eq!(r.df, 4);
        assert_close("statistic", r.statistic, 19.801669283413847, 1e-12);
        assert_close("p", r.p_value, 0.0005464895988803472, 1e-9);
    }

    /// Far tail. Reference: scipy `chi2_contingency([[5000, 4000], [3000, 6000]],
    /// correction=False)`: statistic 900.0, p 9.813427854296455e-198.
    #[test]
    fn chi_square_p_value_far_tail() {
        let counts = vec![vec![5000, 4000], vec![3000, 6000]];
        let r = chi_square(&labels("r", 2), &labels("c", 2), &counts).expect("chi-square");
        assert_close("statistic", r.statistic, 900.0, 1e-12);
        assert_close("p", r.p_value, 9.813427854296374e-198, 1e-9);
    }

    #[test]
    fn chi_square_proportional_table_is_exactly_independent() {
        let counts = vec![vec![10, 20, 30], vec![1, 2, 3], vec![7, 14, 21]];
        let r = chi_square(&labels("r", 3), &labels("c", 3), &counts).expect("chi-square");
        assert_eq!((r.statistic, r.p_value), (0.0, 1.0));
    }

    #[test]
    fn chi_square_huge_counts() {
        // T·O and R·C overflow i128; the 256-bit path keeps the statistic exact.
        let big = u64::MAX;
        let counts = vec![vec![big, big - 1], vec![big - 2, big]];
        let r = chi_square(&labels("r", 2), &labels("c", 2), &counts).expect("chi-square");
        // For a 2x2 table, statistic = T·(ad − bc)² / (R1·R2·C1·C2), and here
        // ad − bc = M² − (M − 1)(M − 2) = 3M − 2 for M = u64::MAX, exact in i128.
        let (a, b, c, d) = (big as f64, (big - 1) as f64, (big - 2) as f64, big as f64);
        let ad_bc = (3 * i128::from(big) - 2) as f64;
        let want = (a + b + c + d) * ad_bc * ad_bc / ((a + b) * (c + d) * (a + c) * (b + d));
        assert_close("statistic", r.statistic, want, 1e-12);
    }

    #[test]
    fn chi_square_degenerate_inputs_are_typed_errors() {
        let none: Vec<String> = Vec::new();
        assert_eq!(
            chi_square(&none, &none, &[]),
            Err(StatsError::TableTooSmall {
                rows: 0,
                columns: 0
            })
        );
        let two = labels("x", 2);
        assert_eq!(
            chi_square(&two, &two, &[vec![0, 0], vec![0, 0]]),
            Err(StatsError::TableTooSmall {
                rows: 0,
                columns: 0
            })
        );
        assert_eq!(
            chi_square(&two, &two, &[vec![3, 4], vec![0, 0]]),
            Err(StatsError::TableTooSmall {
                rows: 1,
                columns: 2
            })
        );
        assert_eq!(
            chi_square(&two, &labels("c", 3), &[vec![3, 0, 1], vec![2, 0, 5]]).map(|r| r.df),
            Ok(1)
        );
        assert_eq!(
            chi_square(&two, &two, &[vec![3, 4]]),
            Err(StatsError::RowCountMismatch { labels: 2, rows: 1 })
        );
        assert_eq!(
            chi_square(&two, &two, &[vec![3, 4], vec![5]]),
            Err(StatsError::RaggedTable {
                row: 1,
                expected: 2,
                found: 1
            })
        );
    }

    #[test]
    fn product_difference_is_exact_at_the_ends_of_i128() {
        let a = 1i128 << 126;
        assert_eq!(product_difference(a, a, a - 1, a + 1), 1.0);
        assert_eq!(product_difference(a - 1, a + 1, a, a), -1.0);
        assert_eq!(
            product_difference(i128::MIN, i128::MAX, i128::MAX, i128::MIN),
            0.0
        );
        // 2^254 − (2^127 − 1)² = 2^128 − 1.
        assert_eq!(
            product_difference(i128::MIN, i128::MIN, i128::MAX, i128::MAX),
            2f64.powi(128)
        );
        // 2^254 + 2^127·(2^127 − 1) = 2^255 − 2^127: the largest magnitude possible.
        assert_eq!(
            product_difference(i128::MIN, i128::MIN, i128::MIN, i128::MAX),
            2f64.powi(255)
        );
        let full = U256::product(u128::MAX, u128::MAX);
        assert_eq!(
            full,
            U256 {
                hi: u128::MAX - 1,
                lo: 1
            }
        );
    }

    #[test]
    fn wide_path_agrees_with_i128_where_both_apply() {
        let mut rng = Rng(0x5EED_0004);
        for _ in 0..10_000 {
            let mut operand = || {
                let bits = rng.range(0, 62);
                let v = (rng.next() >> (63 - bits)) as i128;
                if rng.next() & 1 == 0 {
                    v
                } else {
                    -v
                }
            };
            let (a, b, c, d) = (operand(), operand(), operand(), operand());
            let exact = (a * b - c * d) as f64;
            assert_close("wide", wide_product_difference(a, b, c, d), exact, 2e-16);
        }
    }

    fn arbitrary_moments() -> impl Strategy<Value = Moments> {
        let n = prop_oneof![Just(0u64), 1u64..100, any::<u64>()];
        let wide = prop_oneof![-1000i128..1000, any::<i128>()];
        (n, wide.clone(), wide).prop_map(|(n, sum, sum_sq)| Moments { n, sum, sum_sq })
    }

    proptest! {
        #[test]
        fn anova_never_panics(
            groups in proptest::collection::vec(arbitrary_moments(), 0..6),
            scale in prop_oneof![Just(1.0), any::<f64>()],
        ) {
            let groups: Vec<(String, Moments)> =
                groups.into_iter().enumerate().map(|(i, m)| (format!("g{i}"), m)).collect();
            if let Ok(r) = anova(&groups, scale) {
                prop_assert!((0.0..=1.0).contains(&r.p_value), "p {}", r.p_value);
                prop_assert!(r.f >= 0.0);
            }
        }

        #[test]
        fn anova_of_real_values_never_panics(
            groups in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![-3i64..3, -(1i64 << 40)..(1i64 << 40), any::<i64>()],
                    0..8,
                ),
                0..5,
            ),
        ) {
            if let Ok(r) = anova(&named(&groups), 10.0) {
                prop_assert!((0.0..=1.0).contains(&r.p_value), "p {}", r.p_value);
                prop_assert!(r.f >= 0.0 && r.ss_within >= 0.0 && r.ss_between >= 0.0);
            }
        }

        #[test]
        fn chi_square_never_panics(
            counts in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![0u64..10, any::<u64>()], 0..5),
                0..5,
            ),
            columns in 0usize..5,
        ) {
            let rows = labels("r", counts.len());
            if let Ok(r) = chi_square(&rows, &labels("c", columns), &counts) {
                prop_assert!((0.0..=1.0).contains(&r.p_value), "p {}", r.p_value);
                prop_assert!(r.statistic >= 0.0 && r.statistic.is_finite());
            }
        }
    }
}
