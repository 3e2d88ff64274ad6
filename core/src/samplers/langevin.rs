//! Overdamped Langevin dynamics (OLD) at one noise level.
//!
//! Jain & Poole, "Journey to the BAOAB-limit", §2: `z ← z + ε s(z) + √(2ε) ξ` at a fixed σ.
//! This is annealed Langevin sampling ([`super::als::Als`]) over a single level — with one level,
//! ALS's α = ε σ²/σ_N² is ε itself — so this file only names it. Annealed level by level, it is ALS.
//!
//! Departures: none; the stability bound ε < 2(τ² + σ²) is checked.

use crate::error::Error;
use crate::params::{LangevinStep, StepConvention};
use crate::schedule::Borrowed;

use super::any::{Info, TakesStep};

use super::als::Als;

/// OLD at the one level of `sigma` with step ε (NCSNv2 convention: `z ← z + ε s + √(2ε) ξ`) for
/// `steps` steps; `tau` as for [`Als::new`].
pub fn overdamped(
    sigma: &[f64; 1],
    eps: f64,
    steps: u32,
    tau: f64,
) -> Result<Als<Borrowed<'_>>, Error> {
    Als::new(Borrowed::single(sigma)?, LangevinStep::new(eps, StepConvention::Ncsnv2)?, steps, tau)
}

/// Overdamped Langevin level by level (ALS without the denoising step) as the sampler family
/// knows it ([`super::any`]); it is built by ALS's builder.
pub(crate) const INFO: Info = Info {
    name: "langevin",
    uses_steps_per_level: true,
    langevin_step: TakesStep::Always,
    takes_eta: false,
    final_denoise: false,
};

#[cfg(test)]
mod tests {
    use crate::params::{LangevinStep, StepConvention};
    use crate::plan::Plan;
    use crate::samplers::als::Als;
    use crate::samplers::known::{self, KEEP};
    use crate::schedule::Borrowed;

    /// One level σ = 0.5, ε = 0.1, T = 3: three steps z ← z + ε s + √(2ε) ξ (ALS's α = ε σ²/σ_N²
    /// is ε itself), no denoiser.
    #[test]
    fn known_coefficients() {
        let level = [0.5];
        let one = Borrowed::single(&level).unwrap();
        let st = LangevinStep::new(0.1, StepConvention::Ncsnv2).unwrap();
        let old = Als::new(one, st, 3, 0.0).unwrap();
        assert_eq!(old.len(), 3);
        for k in 0..3 {
            known::step(old.step(k), 0, 0.5, [1.0, 0.0, 0.1, 0.4472135954999579], KEEP);
        }
    }
}
