//! Inpainting.
//!
//! NCSN (Song & Ermon 2019), Algorithm 2: given known values `x_known` and a mask m (1 = known),
//! for each level draw `y = x_known + σ_i z̃` once, and follow every Langevin step with
//! `x ← x ⊙ (1 − m) + y ⊙ m`.
//!
//! In anneal the projection is part of the executor ([`crate::plan::Inpaint`], passed to
//! [`crate::plan::run`]), so it works with every plan: ALS and the single-level samplers project
//! onto `x_known + σ_i z̃_i` during level i; CAS and PC, whose steps move the state from σ_i to
//! σ_{i+1}, project onto `x_known + σ_{i+1} z̃_{i+1}` — the noise level the state has after the step
//! ([`crate::plan::Step::sigma_after`]); after a final denoising step the known part is `x_known`
//! itself.
//!
//! Departures: the CAS/PC use of σ_{i+1} (Alg. 2 is written for ALS only), and the exact data
//! after denoising.

#[cfg(test)]
mod tests {
    use crate::EtaRule;
    use crate::error::Error;
    use crate::noise::{Noise, Stream};
    use crate::plan::{self, Batch, Inpaint, PerSample, Plan};
    use crate::real::Real;
    use crate::samplers::cas::Cas;
    use crate::samplers::known;
    use crate::score::Score;

    /// Every normal is 1/2, every uniform 1/2.
    struct Half;
    impl Noise for Half {
        fn normals<F: Real>(&mut self, _: u64, _: Stream, out: &mut [F]) {
            out.iter_mut().for_each(|v| *v = F::from_f64(0.5));
        }
        fn uniforms<F: Real>(&mut self, _: u64, _: Stream, out: &mut [F]) {
            out.iter_mut().for_each(|v| *v = F::from_f64(0.5));
        }
    }

    /// The first `.1` steps of a plan.
    struct Prefix<'a, P>(&'a P, usize);
    impl<P: Plan> Plan for Prefix<'_, P> {
        fn len(&self) -> usize {
            self.0.len().min(self.1)
        }
        fn step(&self, k: usize) -> Option<crate::plan::Step> {
            if k < self.1 { self.0.step(k) } else { None }
        }
    }

    /// s = 0 everywhere.
    struct Flat;
    impl Score<f64> for Flat {
        fn dim(&self) -> usize {
            2
        }
        fn score(&self, _: &[f64], _: f64, out: &mut [f64]) -> Result<(), Error> {
            out.fill(0.0);
            Ok(())
        }
    }

    /// CAS on σ = 4, 2, 1 with the denoiser, x = (0, 0), coordinate 0 known (= 3), every normal
    /// 1/2 and s = 0: after step 1 the known coordinate is 3 + σ_2 · 1/2 = 4 (the level the state
    /// has reached), the unknown one 0 + β σ_2 · 1/2 = √0.75; after step 2, 3 + σ_3/2 = 3.5 and
    /// √0.75 + √0.75/2; after the denoiser the known coordinate is 3 itself.
    #[test]
    fn known_projection() {
        let cas = Cas::new(known::schedule(), EtaRule::eps_c(2.0).unwrap())
            .and_then(crate::Plan::denoised)
            .unwrap();
        let (known_x, mask) = ([3.0, 0.0], [1.0, 0.0]);
        let run = |steps: usize| {
            let plan = Prefix(&cas, steps);
            let (mut x, mut a, mut s, mut xi, mut p, mut z) =
                ([0.0; 2], [0.0; 2], [0.0; 2], [0.0; 2], [0.0; 2], [0.0; 2]);
            let batch = Batch {
                dim: 2,
                first_sample: 0,
                x: &mut x,
                aux: &mut a,
                score: &mut s,
                noise: &mut xi,
                point: &mut p,
            };
            let inpaint = Inpaint { known: &known_x, mask: &mask, level_noise: &mut z };
            plan::run(&plan, &mut PerSample(Flat), &mut Half, batch, Some(inpaint), &mut ())
                .unwrap();
            x
        };
        let b = 0.75f64.sqrt();
        assert_eq!(run(1), [4.0, b]);
        assert_eq!(run(2), [3.5, b + b / 2.0]);
        assert_eq!(run(3), [3.0, b + b / 2.0]);
    }
}
