//! Foresight: the consistency trace a plan would give, from its coefficients alone, before any
//! sampling — NCSNv2's Proposition 3 carried through a whole plan.
//!
//! Model: one data point μ with mode width τ, so that p_σ = N(μ, (τ² + σ²) I) and the score at
//! the point y is `−(y − μ)/(τ² + σ²)`; every coordinate is independent and alike. A linear step
//! (`x ← c_x x + c_a a + c_s s(y) + c_n ξ` with `y = x + p_a a + p_n ξ`, and the same for the
//! auxiliary state a) maps the second moments of (x − μ, a) exactly:
//! `Σ' = L Σ Lᵀ + k kᵀ`, where L holds the coefficients of (x − μ, a) once s(y) is substituted
//! and k the coefficients of ξ. The start is N(μ, σ_1² I) (and a ~ N(0, I) where the plan has a
//! momentum). An snr step `x ← x + α s + √(2α) ξ` with norms over many samples takes
//! `α = 2 snr² (τ² + σ²)²/V` (‖ξ‖²/D → 1, ‖s‖²/D → V/(τ² + σ²)²), then maps V as a Langevin
//! step.
//!
//! At every step that leaves the state at a level (the trace's rule: the next step is at another
//! level or σ, or there is none), the trace's quantity follows: `σ_eff² = σ⁴ V/(τ² + σ²)²`, and
//! the ratio σ_eff/σ (1 = consistent on one-point data). For ALS this is Proposition 3 level by
//! level, with each level starting where the previous one ended — so an inconsistency compounds:
//! NCSNv2's CIFAR-10 step (ε = 6.2e-6, T = 5) on σ 50 → 0.01 in N = 10 levels ends at σ_eff/σ_N
//! ≈ 3·10², every step inside its stability bound.

use crate::plan::{AuxInit, Plan, Update};

/// Calls `out(level, σ, σ_eff/σ)` (level 0-based) at every step of `plan` that leaves the state
/// at a level, as predicted on one-point data with mode width `tau`, starting from
/// N(μ, `sigma_start`² I). Returns the largest ratio (0 when nothing is traced).
pub fn predicted_trace<P: Plan + ?Sized>(
    plan: &P,
    tau: f64,
    sigma_start: f64,
    mut out: impl FnMut(usize, f64, f64),
) -> f64 {
    // Second moments per coordinate: xx = E[(x − μ)²], xa = E[(x − μ) a], aa = E[a²].
    let (mut xx, mut xa, mut aa) = (sigma_start * sigma_start, 0.0, 0.0);
    if plan.aux_init() == AuxInit::Normal {
        aa = 1.0;
    }
    let mut worst: f64 = 0.0;
    let mut k = 0;
    while let Some(step) = plan.step(k) {
        let v = tau * tau + step.sigma * step.sigma;
        match step.update {
            Update::Linear { x: cx, aux: ca } => {
                let (pa, pn) = (step.point.aux, if step.noise { step.point.noise } else { 0.0 });
                // s = −(x + pa a + pn ξ)/v (centred): substitute into each line.
                let row = |c: &crate::plan::Lin| {
                    let lx = c.x - c.score / v;
                    let la = c.aux - c.score * pa / v;
                    let kn = if step.noise { c.noise - c.score * pn / v } else { 0.0 };
                    (lx, la, kn)
                };
                let (x1, x2, xk) = row(&cx);
                let (a1, a2, ak) = row(&ca);
                let nxx = x1 * x1 * xx + 2.0 * x1 * x2 * xa + x2 * x2 * aa + xk * xk;
                let nxa = x1 * a1 * xx + (x1 * a2 + x2 * a1) * xa + x2 * a2 * aa + xk * ak;
                let naa = a1 * a1 * xx + 2.0 * a1 * a2 * xa + a2 * a2 * aa + ak * ak;
                (xx, xa, aa) = (nxx, nxa, naa);
            }
            Update::Snr { snr, .. } => {
                let alpha = if xx > 0.0 { 2.0 * snr * snr * v * v / xx } else { 0.0 };
                let r = 1.0 - alpha / v;
                xx = r * r * xx + 2.0 * alpha;
                xa *= r;
            }
        }
        let leaves = plan.step(k + 1).is_none_or(|nx| {
            nx.level_after != step.level_after || nx.sigma_after != step.sigma_after
        });
        if step.sigma_after > 0.0 && leaves {
            let s = step.sigma_after;
            let vs = tau * tau + s * s;
            let ratio = libm::sqrt(s * s * xx) / vs;
            worst = worst.max(ratio);
            out(step.level_after, s, ratio);
        }
        k += 1;
    }
    worst
}
