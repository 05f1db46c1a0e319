//! The one rounding rule. Azure is written in .NET, and its numbers are `Math.Round(double, d)`:
//! scale the double, round half to even, scale back. Rounding the exact quotient half-up instead
//! gives different answers (recorded 7.53 / 8 → 0.9412, not 0.9413), so nothing else may round.

/// Exact powers of ten for the digit counts .NET accepts (0–15).
const POW10: [f64; 16] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// Above this every double is already an integer, and scaling could overflow; .NET returns the
/// value unchanged (its `doubleRoundLimit`).
const ROUND_LIMIT: f64 = 1e16;

/// .NET `Math.Round(x, digits)`: multiply by 10^digits, round half to even, divide.
///
/// NaN, infinities and magnitudes ≥ 1e16 come back unchanged, as in .NET.
///
/// # Panics
/// If `digits > 15`, where .NET throws `ArgumentOutOfRangeException`; callers pass constants.
#[must_use]
pub fn round_dotnet(x: f64, digits: u32) -> f64 {
    let power = POW10[digits as usize];
    if x.abs() < ROUND_LIMIT {
        (x * power).round_ties_even() / power
    } else {
        x
    }
}

// Exact float comparisons are the point: Azure's numbers must match to the bit.
#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_halves_go_to_even() {
        for (x, want) in [(0.5, 0.0), (1.5, 2.0), (2.5, 2.0), (3.5, 4.0), (-2.5, -2.0)] {
            assert_eq!(round_dotnet(x, 0), want, "{x}");
        }
        // Binary fractions, so the scaled value is exactly .5.
        assert_eq!(round_dotnet(0.125, 2), 0.12);
        assert_eq!(round_dotnet(0.375, 2), 0.38);
        assert_eq!(round_dotnet(1.0625, 3), 1.062);
        assert_eq!(round_dotnet(0.126, 2), 0.13);
    }

    #[test]
    fn rounds_the_scaled_double_not_the_decimal() {
        // 1.005 is stored just below 1.005 and ×100 stays below 100.5: .NET gives 1.
        assert_eq!(round_dotnet(1.005, 2), 1.0);
        // The recorded Azure case: 7.53 / 8 scales to exactly 9412.5, which goes to even.
        assert_eq!(round_dotnet(7.53 / 8.0, 4), 0.9412);
        assert_eq!(round_dotnet(3.33 / 4.0, 4), 0.8325);
    }

    #[test]
    fn removes_float_noise() {
        assert_ne!(0.1 + 0.2, 0.3);
        assert_eq!(round_dotnet(0.1 + 0.2, 2), 0.3);
        assert_eq!(round_dotnet(10.0 + 0.2 + 2.0 + 3.33 + 4.0 + 4.0, 2), 23.53);
    }

    #[test]
    fn out_of_range_values_are_unchanged() {
        assert_eq!(round_dotnet(1e17 + 0.0, 2), 1e17);
        assert_eq!(round_dotnet(f64::INFINITY, 2), f64::INFINITY);
        assert!(round_dotnet(f64::NAN, 2).is_nan());
    }

    proptest! {
        #[test]
        fn idempotent_and_close(x in -1e6..1e6f64, digits in 0u32..=6) {
            let r = round_dotnet(x, digits);
            prop_assert_eq!(round_dotnet(r, digits), r);
            // Half a unit of the last digit, plus the error of scaling in binary.
            prop_assert!((r - x).abs() <= 0.5 / POW10[digits as usize] + x.abs() * 4.0 * f64::EPSILON);
        }
    }
}
