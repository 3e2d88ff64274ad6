//! NCSNv2's Techniques 1, 2 and 4 against computations written here independently, on the paper's
//! CIFAR-10 setting (D = 3072, σ_1 = 50, σ_N = 0.01, T = 5).

use anneal_core::ncsnv2::{
    max_pairwise_distance, prop3_ratio, technique2_growth, technique2_levels, technique4_eps,
};
use anneal_core::{Error, Growth, Param};

/// Φ by Simpson's rule on the normal density (independent of erf/erfc): error ~1e-14.
fn phi(x: f64) -> f64 {
    let n = 20_000;
    let h = x / n as f64;
    let f = |t: f64| (-0.5 * t * t).exp();
    let mut s = f(0.0) + f(x);
    for k in 1..n {
        s += f(k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
    }
    0.5 + s * h / 3.0 / (2.0 * std::f64::consts::PI).sqrt()
}

/// Technique 2 by regula falsi (Illinois variant) on g directly, bracket [1, 2].
fn growth_by_secant(d: f64, c: f64) -> f64 {
    let h = |g: f64| {
        phi((2.0 * d).sqrt() * (g - 1.0) + 3.0 * g)
            - phi((2.0 * d).sqrt() * (g - 1.0) - 3.0 * g)
            - c
    };
    let (mut a, mut b) = (1.0, 2.0);
    let (mut fa, mut fb) = (h(a), h(b));
    assert!(fa > 0.0 && fb < 0.0);
    let mut side = 0;
    for _ in 0..200 {
        let x = (a * fb - b * fa) / (fb - fa);
        let fx = h(x);
        if fx == 0.0 || (b - a).abs() < 1e-15 {
            return x;
        }
        if fx > 0.0 {
            a = x;
            fa = fx;
            if side == 1 {
                fb *= 0.5;
            }
            side = 1;
        } else {
            b = x;
            fb = fx;
            if side == -1 {
                fa *= 0.5;
            }
            side = -1;
        }
    }
    (a * fb - b * fa) / (fb - fa)
}

#[test]
fn technique2_on_cifar10() {
    let g = technique2_growth(3072, 0.5).unwrap();
    let want = growth_by_secant(3072.0, 0.5);
    assert!((g.value() - want).abs() < 1e-9, "g = {} vs {want}", g.value());
    let n = technique2_levels(50.0, 0.01, g).unwrap();
    let want_n = 1 + ((50.0f64 / 0.01).ln() / want.ln()).ceil() as usize;
    assert_eq!(n, want_n);
    // The result as it stands: 220 levels (the paper used L = 232; see the README).
    assert_eq!(n, 220);
    // Other dimensions and C.
    for &(d, c) in &[(784usize, 0.5), (12288, 0.5), (3072, 0.3), (3072, 0.9)] {
        let g = technique2_growth(d, c).unwrap().value();
        let want = growth_by_secant(d as f64, c);
        assert!((g - want).abs() < 1e-8, "D={d} C={c}: {g} vs {want}");
    }
}

/// Proposition 3 written out as in the paper, with r = 1 − ε/σ_N².
fn prop3_paper(eps: f64, sn: f64, g: f64, t: i32) -> f64 {
    let s2 = sn * sn;
    let r = 1.0 - eps / s2;
    let a = 2.0 * eps / (s2 - s2 * r * r);
    r.powi(2 * t) * (g * g - a) + a
}

#[test]
fn technique4_on_cifar10() {
    let (s1, sn, t) = (50.0f64, 0.01f64, 5u32);
    for &n in &[220usize, 232] {
        let g = (s1 / sn).powf(1.0 / (n - 1) as f64);
        let growth = Growth::new(g).unwrap();
        // Independent: dense linear grid over ε ∈ (0, σ_N²], 400 000 points.
        let m = 400_000;
        let (mut best_eps, mut best) = (0.0, f64::INFINITY);
        for k in 1..=m {
            let eps = sn * sn * k as f64 / m as f64;
            let v = (prop3_paper(eps, sn, g, t as i32) - 1.0).abs();
            if v < best {
                best = v;
                best_eps = eps;
            }
        }
        let got = technique4_eps(sn, growth, t).unwrap();
        // Grid spacing is 2.5e-6 of σ_N²: agree to 1e-3 relative.
        assert!((got.eps - best_eps).abs() < 1e-3 * best_eps, "N={n}: {} vs {best_eps}", got.eps);
        assert!((got.ratio - 1.0).abs() <= best + 1e-12);
        assert!(
            (prop3_ratio(got.eps, sn, growth, t) - prop3_paper(got.eps, sn, g, t as i32)).abs()
                < 1e-12
        );
        if n == 232 {
            // NCSNv2's published CIFAR-10 configuration: L = 232, T = 5, ε = 6.2e-6 (two digits).
            assert!((got.eps - 6.2e-6).abs() < 0.05e-6, "ε = {}", got.eps);
        }
    }
}

#[test]
fn technique1_max_pairwise_distance() {
    let pts = [0.0f32, 0.0, 3.0, 4.0, -1.0, 0.0, 1.0, 1.0];
    assert_eq!(max_pairwise_distance(&pts, 2).unwrap(), (16.0f64 + 16.0).sqrt());
    assert_eq!(max_pairwise_distance(&[1.0f64, 2.0], 1).unwrap(), 1.0);
    assert_eq!(
        max_pairwise_distance::<f64>(&[], 2),
        Err(Error::TooFewPoints { points: 0, min: 2 })
    );
    assert_eq!(
        max_pairwise_distance(&[1.0f64, 2.0], 2),
        Err(Error::TooFewPoints { points: 1, min: 2 })
    );
    assert!(matches!(
        max_pairwise_distance(&[1.0f64, 2.0, 3.0], 2),
        Err(Error::DimensionMismatch { .. })
    ));
    assert_eq!(
        max_pairwise_distance(&[1.0f64, f64::NAN], 1),
        Err(Error::NonFiniteInput { index: 1 })
    );
    assert!(matches!(
        max_pairwise_distance(&[1.0f64], 0),
        Err(Error::OutOfRange { param: Param::Dim, .. })
    ));
}

#[test]
fn invalid_technique_inputs_are_named() {
    for c in [0.0, 1.0, -0.5, 2.0, f64::NAN] {
        assert!(
            matches!(technique2_growth(3072, c), Err(Error::OutOfRange { param: Param::C, .. })),
            "C = {c}"
        );
    }
    // C above Φ(3) − Φ(−3) is unreachable.
    assert_eq!(technique2_growth(3072, 0.999), Err(Error::NoGrowth { dim: 3072, c: 0.999 }));
    let g = Growth::new(1.04).unwrap();
    assert!(matches!(
        technique4_eps(0.01, g, 0),
        Err(Error::OutOfRange { param: Param::StepsPerLevel, .. })
    ));
    assert!(matches!(
        technique4_eps(-1.0, g, 5),
        Err(Error::OutOfRange { param: Param::SigmaMin, .. })
    ));
    assert!(Growth::new(1.0).is_none() && Growth::new(f64::NAN).is_none());
}
